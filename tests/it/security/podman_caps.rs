//! Containers keep only the capabilities their unit grants and can never gain more
//! (security issue point 12): `/proc/self/status` inside a real container.

use crate::support::podman::*;
use prometheus_stack::plan::{build, BuildOptions};
use prometheus_stack::runtime::podman::PodmanChild;
use prometheus_stack::runtime::LogSink;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// `CapEff` and `NoNewPrivs` of a busybox unit whose extra TOML lines are `extra`.
fn status_lines(extra: &str) -> Vec<String> {
    require_podman();
    let img = busybox();
    let dir = tempfile::tempdir().unwrap();
    let stack = unique_stack("cap");
    let toml = format!(
        r#"
[stack]
name = "{stack}"
data_dir = "{data}"
[services.web]
runtime = "podman"
image = "{img}"
command = ["/bin/sh", "-c", "grep -E 'CapEff|NoNewPrivs' /proc/self/status; exec sleep 60"]
{extra}
"#,
        data = dir.path().join("data").display()
    );
    let (cfg, src) =
        prometheus_stack::config::load_str("test.toml", None, toml).expect("config parses");
    let plan = build(&cfg, &src, BuildOptions { check_host: false }).expect("plan builds");
    let out = rt().block_on(async {
        let log = LogSink::quiet("web");
        let unit = plan.unit("web").unwrap();
        let mut c = PodmanChild::start(&plan, unit, &BTreeMap::new(), log.clone())
            .await
            .expect("container starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        let lines = loop {
            let l: Vec<String> = log.tail(100).iter().map(|l| l.to_string()).collect();
            if l.len() >= 2 || Instant::now() > deadline {
                break l;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        c.stop(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(5))
            .await;
        lines
    });
    cleanup_stack(&stack);
    out.iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn generic_unit_keeps_podmans_set_without_setfcap_setpcap_sys_chroot() {
    // CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID NET_BIND_SERVICE = bits 0,1,3-7,10.
    let l = status_lines("");
    assert_eq!(l, ["CapEff: 00000000000004fb", "NoNewPrivs: 1"], "{l:?}");
}

#[test]
fn capabilities_key_drops_all_others() {
    let l = status_lines("capabilities = []");
    assert_eq!(l, ["CapEff: 0000000000000000", "NoNewPrivs: 1"], "{l:?}");
    // CAP_CHOWN = bit 0, KILL = bit 5.
    let l = status_lines(r#"capabilities = ["cap_chown", "KILL"]"#);
    assert_eq!(l, ["CapEff: 0000000000000021", "NoNewPrivs: 1"], "{l:?}");
}

#[test]
fn bad_capability_name_is_a_config_issue() {
    let toml = r#"
[stack]
name = "s"
data_dir = "/tmp/x"
[services.web]
runtime = "podman"
image = "i"
capabilities = ["CHOWN --privileged"]
"#;
    let (cfg, src) =
        prometheus_stack::config::load_str("test.toml", None, toml.into()).expect("parses");
    let err = build(&cfg, &src, BuildOptions { check_host: false }).unwrap_err();
    assert!(format!("{err:?}").contains("capabilities"), "{err:?}");
}

/// The `podman run` argv of each preset's container, from a real plan.
#[test]
fn preset_argv_drop_all_or_keep_podmans_defaults_and_never_gain_privileges() {
    use prometheus_stack::plan::Runtime;
    use prometheus_stack::runtime::podman::{run_argv, RunArgs};
    let text = r#"
[stack]
domain = "example.test"
data_dir = "/var/lib/ps-test"
[proxy]
tls = "internal"
[services.logto]
preset = "logto"
image = "ghcr.io/logto-io/logto:1.42.0"
env = { DB_URL = "postgres://logto:pw@127.0.0.1:5432/logto" }
[services.lobechat]
preset = "lobechat"
image = "docker.io/lobehub/lobehub:2.1.26"
env = { DATABASE_URL = "postgres://lobechat:pw@127.0.0.1:5432/lobechat" }
[services.objects]
preset = "minio"
runtime = "podman"
[services.store2]
preset = "rustfs"
runtime = "podman"
port = 26300
"#;
    let (cfg, src) =
        prometheus_stack::config::load_str("stack.toml", None, text.into()).expect("config parses");
    let p = build(&cfg, &src, BuildOptions { check_host: false }).expect("plan builds");
    let argv = |name: &str| {
        let u = p.unit(name).unwrap_or_else(|| panic!("{name} in plan"));
        let Runtime::Podman(spec) = &u.runtime else {
            panic!("{name} not podman")
        };
        run_argv(&RunArgs {
            stack: &p.stack,
            unit: u,
            spec,
            env_file: None,
            env_secrets: &[],
            pidfile: std::path::Path::new("/p"),
            user: None,
        })
    };
    for name in ["logto", "logto-seed", "lobechat", "objects", "store2"] {
        let v = argv(name);
        assert!(v.iter().any(|x| x == "--cap-drop=all"), "{name}: {v:?}");
        assert!(
            !v.iter().any(|x| x.starts_with("--cap-add")),
            "{name}: {v:?}"
        );
        assert!(v.iter().any(|x| x == "--security-opt=no-new-privileges"));
    }
    // Not root where the image allows (the unit's `user` would win; root daemons only).
    let image_user = |name: &str| match &p.unit(name).unwrap().runtime {
        Runtime::Podman(spec) => spec.image_user,
        Runtime::Process => panic!("{name} not podman"),
    };
    for (name, want) in [
        ("logto", Some((1000, 0))),
        ("logto-seed", Some((1000, 0))),
        ("objects", Some((10001, 10001))),
        ("store2", Some((10001, 10001))),
    ] {
        assert_eq!(image_user(name), want, "{name}");
    }
}
