//! The podman runtime against real podman + runc with locally built images: env delivery
//! without values on any command line, user and volumes, stop by name, crash, leftovers,
//! never pulling.

use crate::support::podman::*;
use prometheus_stack::plan::{build, BuildOptions, Plan};
use prometheus_stack::runtime::podman::{self, PodmanChild, PodmanError};
use prometheus_stack::runtime::LogSink;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

struct Fixture {
    _dir: tempfile::TempDir,
    plan: Plan,
    stack: String,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        cleanup_stack(&self.stack);
    }
}

/// A plan with one podman unit `web` whose extra TOML lines are `unit`.
fn fixture(unit: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let stack = unique_stack("prt");
    let toml = format!(
        r#"
[stack]
name = "{stack}"
data_dir = "{data}"
[services.web]
runtime = "podman"
{unit}
"#,
        data = dir.path().join("data").display()
    );
    let (cfg, src) =
        prometheus_stack::config::load_str("test.toml", None, toml).expect("config parses");
    let plan = build(&cfg, &src, BuildOptions { check_host: false }).expect("plan builds");
    Fixture {
        _dir: dir,
        plan,
        stack,
    }
}

async fn start(f: &Fixture, env: &BTreeMap<String, String>, log: &LogSink) -> PodmanChild {
    PodmanChild::start(&f.plan, f.plan.unit("web").unwrap(), env, log.clone())
        .await
        .expect("container starts")
}

/// Waits until the unit's log holds at least `n` lines; returns them.
async fn lines(log: &LogSink, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let l: Vec<String> = log.tail(1000).iter().map(|l| l.to_string()).collect();
        if l.len() >= n {
            return l;
        }
        assert!(Instant::now() < deadline, "only {l:?} logged");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn env_user_volume_and_output_reach_the_container_and_values_stay_off_command_lines() {
    rt().block_on(async {
    let img = busybox();
    let f = fixture(&format!(
        r#"image = "{img}"
user = "nobody"
volumes = ["state:/state"]
command = ["/bin/sh", "-c", "printf 'A=[%s]\\n' \"$A\"; printf 'PEM=[%s]\\n' \"$PEM\"; echo uid=$(id -u); echo w > /state/f && echo wrote; echo to-stderr >&2; exec sleep 60"]
"#
    ));
    let marker = format!("v4lue-{} with spaces=and equals ", std::process::id());
    let env: BTreeMap<String, String> = [
        ("A".to_string(), marker.clone()),
        ("PEM".to_string(), "line one\nline two".to_string()),
    ]
    .into();
    let log = LogSink::quiet("web");
    let mut c = start(&f, &env, &log).await;
    assert_eq!(c.name(), format!("{}-web", f.stack));
    let pid = c.pid().expect("container pid known once start returns");
    assert_ne!(pid, c.podman_pid());
    let lines = lines(&log, 6).await;
    let out: Vec<&String> = lines.iter().filter(|l| *l != "to-stderr").collect();
    assert_eq!(*out[0], format!("A=[{marker}]"));
    assert_eq!(out[1], "PEM=[line one");
    assert_eq!(out[2], "line two]");
    assert_eq!(out[3], "uid=65534");
    assert_eq!(out[4], "wrote");
    assert!(lines.iter().any(|l| l == "to-stderr"), "{lines:?}");

    // The named volume is a folder under DATA_DIR/volumes owned by the unit's user.
    let vol = f.plan.stack.data_dir.join("volumes/state");
    assert_eq!(std::fs::read_to_string(vol.join("f")).unwrap(), "w\n");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&vol).unwrap().uid(), 65534);

    // The env file is gone once the container runs; no command line holds a value.
    assert!(!podman::state_dir(&f.plan).join("web.env").exists());
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(p.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd);
            assert!(!cmd.contains(&marker), "value on a command line: {cmd}");
            assert!(!cmd.contains("line one"), "value on a command line: {cmd}");
        }
    }
    // Another user cannot inspect root's containers at all.
    let other = std::process::Command::new("su")
        .args(["nobody", "-s", "/bin/sh", "-c"])
        .arg(format!(
            "cd /tmp && HOME=/tmp podman inspect {} 2>&1",
            c.name()
        ))
        .output()
        .unwrap();
    assert!(!other.status.success());
    assert!(!String::from_utf8_lossy(&other.stdout).contains(&marker));
    // Labels, never-pull and init as PID 1.
    let labels = podman_ok(&["inspect", c.name(), "--format", "{{json .Config.Labels}}"]);
    assert!(labels.contains(&format!("\"io.prometheus-stack.stack\":\"{}\"", f.stack)));
    assert!(labels.contains("\"io.prometheus-stack.unit\":\"web\""));
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    // catatonit, mounted by podman as /run/podman-init.
    assert_eq!(comm.trim(), "podman-init");

    // Stop by name: busybox sleep would ignore SIGTERM as PID 1; with --init it stops now.
    let t = Instant::now();
    let status = c
        .stop(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(10))
        .await;
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        t.elapsed()
    );
    assert!(!status.success());
    assert!(stack_containers(&f.stack).is_empty(), "container removed");
    let secrets = podman_ok(&["secret", "ls", "--format", "{{.Name}}"]);
    assert!(
        !secrets.contains(&f.stack),
        "podman secrets removed: {secrets}"
    );
    })
}

#[test]
fn missing_image_is_never_pulled_and_names_bundle_import() {
    rt().block_on(async {
        require_podman();
        let f = fixture("image = \"localhost/pstest-never-built:1\"\ncommand = [\"/bin/true\"]");
        let err = PodmanChild::start(
            &f.plan,
            f.plan.unit("web").unwrap(),
            &BTreeMap::new(),
            LogSink::quiet("web"),
        )
        .await
        .err()
        .expect("missing image must fail");
        assert!(matches!(err, PodmanError::ImageMissing { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("localhost/pstest-never-built:1"), "{msg}");
        assert!(msg.contains("prometheus-stack bundle import"), "{msg}");
        assert!(stack_containers(&f.stack).is_empty());
    })
}

#[test]
fn killed_container_process_ends_wait_and_leaves_no_container() {
    rt().block_on(async {
        let img = busybox();
        let f = fixture(&format!(
            "image = \"{img}\"\ncommand = [\"/bin/sleep\", \"60\"]"
        ));
        let mut c = start(&f, &BTreeMap::new(), &LogSink::quiet("web")).await;
        let pid = c.pid().unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let status = tokio::time::timeout(Duration::from_secs(10), c.wait())
            .await
            .expect("wait returns after the container died");
        assert!(!status.success());
        // --rm: podman's cleanup removes the dead container shortly after.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !stack_containers(&f.stack).is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(stack_containers(&f.stack).is_empty());
    })
}

#[test]
fn leftovers_of_a_killed_daemon_are_removed_and_replace_keeps_one_container() {
    rt().block_on(async {
    let img = busybox();
    let f = fixture(&format!(
        "image = \"{img}\"\ncommand = [\"/bin/sh\", \"-c\", \"echo up; exec sleep 60\"]\nstop_timeout = \"1s\""
    ));
    let log = LogSink::quiet("web");
    let c = start(&f, &BTreeMap::new(), &log).await;
    // Running, not just created (a container killed before it starts is cleaned by conmon).
    assert_eq!(lines(&log, 1).await, vec!["up".to_string()]);
    // What SIGKILL of the daemon leaves: podman run gone, the container still running.
    let podman_pid = c.podman_pid();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(podman_pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::mem::forget(c);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(stack_containers(&f.stack), vec![format!("{}-web", f.stack)]);
    // A new start with the old one still there: still exactly one container.
    let mut c2 = start(&f, &BTreeMap::new(), &LogSink::quiet("web")).await;
    assert_eq!(stack_containers(&f.stack).len(), 1);
    let c2_pid = c2.pid().unwrap();
    assert!(std::path::Path::new(&format!("/proc/{c2_pid}")).exists());
    // Daemon start: every labelled container goes.
    podman::remove_leftovers(&f.plan).await.unwrap();
    assert!(stack_containers(&f.stack).is_empty());
    let _ = tokio::time::timeout(Duration::from_secs(10), c2.wait())
        .await
        .expect("podman run ends when its container is removed");
    })
}

#[test]
fn published_port_answers_on_loopback_for_health_probes() {
    rt().block_on(async {
    let img = busybox();
    let port = port();
    let f = fixture(&format!(
        "image = \"{img}\"\ncommand = [\"/bin/httpd\", \"-f\", \"-p\", \"127.0.0.1:{port}\", \"-h\", \"/www\"]\nport = {port}"
    ));
    let mut c = start(&f, &BTreeMap::new(), &LogSink::quiet("web")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").unwrap();
            let mut b = String::new();
            let _ = s.read_to_string(&mut b);
            break b;
        }
        assert!(Instant::now() < deadline, "port {port} never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.ends_with("ok\n"), "{body}");
    c.stop(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(5))
        .await;
    assert!(stack_containers(&f.stack).is_empty());
    })
}

#[test]
fn stop_with_another_signal_reaches_the_program_through_init() {
    rt().block_on(async {
        let img = busybox();
        let f = fixture(&format!(
            "image = \"{img}\"\ncommand = [\"/bin/sh\", \"-c\", \"trap 'echo got-int; exit 0' INT; echo ready; while :; do sleep 0.05; done\"]"
        ));
        let log = LogSink::quiet("web");
        let mut c = start(&f, &BTreeMap::new(), &log).await;
        assert_eq!(lines(&log, 1).await, vec!["ready".to_string()]);
        let t = Instant::now();
        let exit = c
            .stop(nix::sys::signal::Signal::SIGINT, Duration::from_secs(10))
            .await;
        assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
        assert_eq!(exit.code, Some(0), "{exit}");
        assert!(lines(&log, 2).await.contains(&"got-int".to_string()));
        assert!(stack_containers(&f.stack).is_empty());
    })
}
