//! The `podman run` argv for a unit: a pure function of the plan, so it can be tested
//! without podman and read in one place.

use crate::plan::{Capabilities, PodmanSpec, StackInfo, Unit};
use std::path::Path;
use std::time::Duration;

/// Label carrying the stack name; `remove_leftovers` selects containers by it.
pub const LABEL_STACK: &str = "io.prometheus-stack.stack";
/// Label carrying the unit name.
pub const LABEL_UNIT: &str = "io.prometheus-stack.unit";

/// Deterministic container name `STACK-UNIT`.
pub fn container_name(stack: &str, unit: &str) -> String {
    format!("{stack}-{unit}")
}

/// Whether a stack name can be part of container and secret names.
pub fn valid_stack_name(stack: &str) -> bool {
    !stack.is_empty()
        && stack.len() <= 64
        && stack.starts_with(|c: char| c.is_ascii_alphanumeric())
        && stack
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Everything `run_argv` needs besides the unit.
#[derive(Debug, Clone)]
pub struct RunArgs<'a> {
    pub stack: &'a StackInfo,
    pub unit: &'a Unit,
    pub spec: &'a PodmanSpec,
    /// 0600 file with the single-line env values (deleted once the container runs).
    pub env_file: Option<&'a Path>,
    /// `(podman secret name, VAR)` for values podman's env-file format cannot carry.
    pub env_secrets: &'a [(String, String)],
    /// Where podman writes the container's main PID.
    pub pidfile: &'a Path,
    /// Numeric `uid:gid` of the unit's user.
    pub user: Option<(u32, u32)>,
}

/// `podman stop -t` and `--stop-timeout` take whole seconds; round up so a unit never
/// gets less time than configured.
pub fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The arguments after `podman` (starting with `run`).
pub fn run_argv(a: &RunArgs<'_>) -> Vec<String> {
    let name = container_name(&a.stack.name, &a.unit.name);
    let mut v: Vec<String> = vec![
        "run".into(),
        format!("--name={name}"),
        format!("--label={LABEL_STACK}={}", a.stack.name),
        format!("--label={LABEL_UNIT}={}", a.unit.name),
        // Never pull: air-gapped sites load images with `bundle import`.
        "--pull=never".into(),
        // A container left by a killed daemon must not block the name.
        "--replace".into(),
        // Every start is a fresh container; our supervisor, not podman, restarts it.
        "--rm".into(),
        "--restart=no".into(),
        "--network=host".into(),
        // stdout/stderr are our pipes: captured like a native unit's, and podman keeps
        // no second, unrotated copy of the logs on disk.
        "--log-driver=passthrough".into(),
        format!("--pidfile={}", a.pidfile.display()),
        format!("--stop-signal={}", a.unit.stop_signal.as_str()),
        format!("--stop-timeout={}", whole_seconds(a.unit.stop_timeout)),
    ];
    if a.spec.init {
        v.push("--init".into());
    }
    v.extend(privilege_args(&a.spec.caps));
    if let Some((uid, gid)) = a.user {
        v.push(format!("--user={uid}:{gid}"));
    }
    if let Some(w) = &a.unit.workdir {
        v.push(format!("--workdir={}", w.display()));
    }
    for vol in &a.spec.volumes {
        v.push(format!("--volume={vol}"));
    }
    if a.spec.gpu_devices {
        v.push("--device=nvidia.com/gpu=all".into());
    }
    if let Some(f) = a.env_file {
        v.push(format!("--env-file={}", f.display()));
    }
    for (secret, var) in a.env_secrets {
        v.push(format!("--secret={secret},type=env,target={var}"));
    }
    v.push(a.spec.image.clone());
    if let crate::plan::Exec::Command(argv) = &a.unit.exec {
        v.extend(argv.iter().cloned());
    }
    v
}

/// Capabilities and `no-new-privileges`: setuid binaries and file capabilities inside
/// the image can never raise what the container was started with.
fn privilege_args(caps: &Capabilities) -> Vec<String> {
    let mut v = vec!["--security-opt=no-new-privileges".to_string()];
    if let Capabilities::Only(keep) = caps {
        v.push("--cap-drop=all".into());
        v.extend(keep.iter().map(|c| format!("--cap-add={c}")));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{blank_unit, Runtime};
    use std::path::PathBuf;

    fn stack() -> StackInfo {
        StackInfo {
            name: "st".into(),
            domain: None,
            data_dir: PathBuf::from("/d"),
            runtime_dir: PathBuf::from("/r"),
            air_gapped: true,
        }
    }

    #[test]
    fn argv_carries_name_labels_policy_and_no_values() {
        let mut u = blank_unit("web", "services.web", "generic");
        u.exec = crate::plan::Exec::Command(vec!["httpd".into(), "-f".into()]);
        u.stop_timeout = Duration::from_millis(2500);
        let spec = PodmanSpec {
            image: "localhost/x:1".into(),
            volumes: vec!["/d/volumes/data:/data".into()],
            init: true,
            gpu_devices: true,
            image_user: None,
            caps: Capabilities::Only(vec!["CHOWN".into()]),
        };
        u.runtime = Runtime::Podman(spec.clone());
        let st = stack();
        let secrets = vec![("st.web.K".to_string(), "K".to_string())];
        let a = RunArgs {
            stack: &st,
            unit: &u,
            spec: &spec,
            env_file: Some(Path::new("/r/podman/web.env")),
            env_secrets: &secrets,
            pidfile: Path::new("/r/podman/web.pid"),
            user: Some((1000, 1001)),
        };
        let v = run_argv(&a);
        for want in [
            "--name=st-web",
            "--label=io.prometheus-stack.stack=st",
            "--label=io.prometheus-stack.unit=web",
            "--pull=never",
            "--stop-timeout=3",
            "--stop-signal=SIGTERM",
            "--init",
            "--security-opt=no-new-privileges",
            "--cap-drop=all",
            "--cap-add=CHOWN",
            "--user=1000:1001",
            "--volume=/d/volumes/data:/data",
            "--device=nvidia.com/gpu=all",
            "--env-file=/r/podman/web.env",
            "--secret=st.web.K,type=env,target=K",
        ] {
            assert!(v.iter().any(|x| x == want), "{want} missing from {v:?}");
        }
        let img = v.iter().position(|x| x == "localhost/x:1").unwrap();
        assert_eq!(&v[img + 1..], ["httpd", "-f"]);
        assert!(!v.iter().any(|x| x.starts_with("--env=") || x == "-e"));
    }

    #[test]
    fn init_opt_out_and_stack_names() {
        let u = blank_unit("a", "services.a", "generic");
        let spec = PodmanSpec {
            image: "i".into(),
            volumes: vec![],
            init: false,
            gpu_devices: false,
            image_user: None,
            caps: Capabilities::PodmanDefault,
        };
        let st = stack();
        let v = run_argv(&RunArgs {
            stack: &st,
            unit: &u,
            spec: &spec,
            env_file: None,
            env_secrets: &[],
            pidfile: Path::new("/p"),
            user: None,
        });
        assert!(!v
            .iter()
            .any(|x| x == "--init" || x.starts_with("--device") || x.starts_with("--cap-")));
        assert!(v.iter().any(|x| x == "--security-opt=no-new-privileges"));
        assert_eq!(v.last().unwrap(), "i");
        assert!(valid_stack_name("prometheus"));
        assert!(!valid_stack_name("a b"));
        assert!(!valid_stack_name("-x"));
        assert_eq!(whole_seconds(Duration::from_secs(10)), 10);
    }
}
