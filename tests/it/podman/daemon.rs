//! Container units through the real daemon binary with real podman: start, stop, restart,
//! a native unit gated on a container's health, crash → restart, SIGKILL of the daemon →
//! new run → exactly one container, and a missing image loaded by `bundle import`.

use crate::support::podman::*;
use std::path::PathBuf;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    stack: String,
    port: u16,
}

/// A stack with a podman web server (health-checked) and a native client gated on it.
fn setup(image: &str) -> Setup {
    require_podman();
    let dir = tempfile::tempdir().unwrap();
    let stack = unique_stack("pdm");
    let port = port();
    let config = dir.path().join("stack.toml");
    let fetched = dir.path().join("fetched");
    std::fs::write(
        &config,
        format!(
            r#"
[stack]
name = "{stack}"
data_dir = "{data}"

[services.web]
runtime = "podman"
image = "{image}"
command = ["/bin/httpd", "-f", "-v", "-p", "127.0.0.1:{port}", "-h", "/www"]
port = {port}
stop_timeout = "5s"
health = {{ http = "http://127.0.0.1:{port}/index.html", interval = "100ms", start_period = "10s" }}
backoff = {{ initial = "100ms", max = "1s" }}

[services.client]
command = ["/bin/sh", "-c", "/bin/busybox wget -q -O {fetched} http://127.0.0.1:{port}/index.html; exec sleep 1000"]
depends_on = {{ web = "healthy" }}
"#,
            data = dir.path().join("data").display(),
            fetched = fetched.display(),
        ),
    )
    .unwrap();
    Setup {
        dir,
        config,
        stack,
        port,
    }
}

fn healthy(u: &serde_json::Value) -> bool {
    u["state"] == "healthy"
}

fn container_id(name: &str) -> String {
    podman_ok(&["inspect", name, "--format", "{{.Id}}"])
        .trim()
        .to_string()
}

fn get(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("port answers");
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").unwrap();
    let mut b = String::new();
    let _ = s.read_to_string(&mut b);
    b
}

#[test]
fn container_unit_starts_gates_a_native_unit_stops_and_restarts() {
    let s = setup(busybox());
    let d = start_daemon(&s.config, &s.stack, &s.dir.path().join("daemon.log"));
    let web = d.wait_unit("web", "healthy", T, healthy);
    let name = format!("{}-web", s.stack);
    assert_eq!(web["container"], name.as_str());
    d.wait_unit("client", "running", T, |u| u["state"] == "running");
    // The client ran only once web answered: its fetch succeeded.
    let deadline = std::time::Instant::now() + T;
    while !s.dir.path().join("fetched").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        std::fs::read_to_string(s.dir.path().join("fetched")).unwrap(),
        "ok\n"
    );
    assert!(get(s.port).ends_with("ok\n"));
    assert_eq!(stack_containers(&s.stack), vec![name.clone()]);

    // stop: by name, removed.
    let o = d.cli(&["stop", "web"]);
    assert!(o.status.success(), "{o:?}");
    d.wait_unit("web", "stopped", T, |u| u["state"] == "stopped");
    assert!(stack_containers(&s.stack).is_empty());
    assert!(std::net::TcpStream::connect(("127.0.0.1", s.port)).is_err());

    // start again, then restart: a new container, still exactly one.
    assert!(d.cli(&["start", "web"]).status.success());
    d.wait_unit("web", "healthy again", T, healthy);
    let first = container_id(&name);
    assert!(d.cli(&["restart", "web"]).status.success());
    d.wait_unit("web", "healthy after restart", T, healthy);
    assert_eq!(stack_containers(&s.stack), vec![name.clone()]);
    assert_ne!(container_id(&name), first);

    // The container's output is in the unit's log like a native unit's (httpd -v logs
    // each health probe).
    let logs = d.cli(&["logs", "web"]);
    assert!(logs.status.success());
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains("response:200"),
        "{logs:?}"
    );
}

#[test]
fn crashed_container_is_restarted_by_the_supervisor() {
    let s = setup(busybox());
    let d = start_daemon(&s.config, &s.stack, &s.dir.path().join("daemon.log"));
    let web = d.wait_unit("web", "healthy", T, healthy);
    let pid = web["pid"].as_u64().expect("pid") as i32;
    let name = format!("{}-web", s.stack);
    let first = container_id(&name);
    // Kill the container's main process from outside.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let web = d.wait_unit("web", "restarted and healthy", T, |u| {
        healthy(u) && u["restarts"].as_u64() >= Some(1)
    });
    assert_ne!(web["pid"].as_u64().unwrap() as i32, pid);
    assert_eq!(stack_containers(&s.stack), vec![name.clone()]);
    assert_ne!(container_id(&name), first);
    assert!(get(s.port).ends_with("ok\n"));
}

#[test]
fn sigkill_of_the_daemon_then_run_leaves_exactly_one_container_per_unit() {
    let s = setup(busybox());
    let mut d = start_daemon(&s.config, &s.stack, &s.dir.path().join("daemon1.log"));
    d.wait_unit("web", "healthy", T, healthy);
    let name = format!("{}-web", s.stack);
    let old = container_id(&name);
    d.kill9();
    // The container outlives the daemon (that is what must be cleaned up).
    assert_eq!(stack_containers(&s.stack), vec![name.clone()]);
    let d2 = start_daemon(&s.config, &s.stack, &s.dir.path().join("daemon2.log"));
    d2.wait_unit("web", "healthy after the new run", T, healthy);
    assert_eq!(stack_containers(&s.stack), vec![name.clone()]);
    assert_ne!(
        container_id(&name),
        old,
        "the leftover was removed, not adopted"
    );
    let log = std::fs::read_to_string(s.dir.path().join("daemon2.log")).unwrap();
    assert!(log.contains("removing leftover container"), "{log}");
    drop(d);
}

#[test]
fn missing_image_fails_with_bundle_import_hint_then_runs_after_import() {
    require_podman();
    let image = format!("localhost/pstest-daemon-{}:1", std::process::id());
    build_busybox_image(&image, &[]);
    let s = setup(&image);
    let bundle = s.dir.path().join("images.tar");
    let cli = |args: &[&str]| {
        std::process::Command::new(crate::support::stack::bin())
            .arg("--config")
            .arg(&s.config)
            .args(args)
            .output()
            .unwrap()
    };
    let o = cli(&["bundle", "create", bundle.to_str().unwrap()]);
    assert!(o.status.success(), "{o:?}");
    podman_ok(&["rmi", "-f", &image]);

    let d = start_daemon(&s.config, &s.stack, &s.dir.path().join("daemon.log"));
    let web = d.wait_unit("web", "reporting the missing image", T, |u| {
        u["last_exit"]
            .as_str()
            .is_some_and(|e| e.contains("bundle import"))
    });
    let why = web["last_exit"].as_str().unwrap();
    assert!(why.contains(&image), "{why}");
    assert!(stack_containers(&s.stack).is_empty());
    assert_ne!(d.unit("client").unwrap()["state"], "running");

    let o = cli(&["bundle", "import", bundle.to_str().unwrap()]);
    assert!(o.status.success(), "{o:?}");
    assert!(d.cli(&["start", "web"]).status.success());
    d.wait_unit("web", "healthy after import", T, healthy);
    d.wait_unit("client", "running", T, |u| u["state"] == "running");
    drop(d);
    let _ = podman(&["rmi", "-f", &image]);
}
