//! `prometheus-stack doctor` end to end: without a daemon (the first finding says so and
//! the file-level checks still run), then against a daemon with a failed unit.

use crate::support::daemon::TestDaemon;
use crate::support::objects::free_port;
use std::time::Duration;

fn config(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let cfg = dir.join("stack.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[stack]
data_dir = "{d}/data"
runtime_dir = "{d}/run"
[control]
socket = "{d}/control.sock"
[services.web]
command = ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
workdir = "{d}"
port = {port}
health = {{ tcp = "127.0.0.1:{port}", interval = "200ms" }}
[services.broken]
command = ["sh", "-c", "echo giving up; exit 3"]
restart = "never"
[services.flaky]
command = ["sh", "-c", "test -f flaky.ran || {{ touch flaky.ran; exit 1; }}; exec sleep 1000"]
workdir = "{d}"
restart = "always"
backoff = {{ initial = "100ms" }}
"#,
            d = dir.display()
        ),
    )
    .unwrap();
    cfg
}

fn doctor(cfg: &std::path::Path) -> (i32, serde_json::Value) {
    let out = crate::support::stack_command(cfg)
        .args(["doctor", "--json"])
        .env_remove("PROMETHEUS_STACK_CONFIG")
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

fn of(v: &serde_json::Value, check: &str) -> Vec<serde_json::Value> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check)
        .cloned()
        .collect()
}

#[test]
fn without_a_daemon_the_first_finding_says_so_and_file_checks_still_run() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), free_port());
    let (code, v) = doctor(&cfg);
    assert_eq!(code, 1, "{v:#}");
    let first = &v["findings"][0];
    assert_eq!(first["check"], "daemon");
    assert_eq!(
        first["message"],
        format!("the daemon is not running (nothing answers on {}/control.sock); only the file-level checks ran", dir.path().display())
    );
    assert_eq!(first["fix"], "systemctl start prometheus-stack (or `prometheus-stack run` in a shell), then run doctor again");
    assert_eq!(
        v["checks"],
        serde_json::json!(["daemon", "dns", "certs", "images", "clock", "disk", "ports", "gpu"])
    );
    // The plain form: the summary line, then the same finding with its fix.
    let out = crate::support::stack_command(&cfg)
        .arg("doctor")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("doctor: 1 problem"), "{text}");
    assert!(
        text.contains("\n  error: daemon: the daemon is not running"),
        "{text}"
    );
}

#[test]
fn a_failed_unit_is_a_problem_and_the_units_own_port_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(dir.path(), port);
    let d = TestDaemon::builder(&cfg)
        .socket(&dir.path().join("control.sock"))
        .start();
    d.wait_state("web", "healthy", Duration::from_secs(20));
    d.wait_state("broken", "failed", Duration::from_secs(20));
    d.wait_until(
        "flaky restarted and running",
        Duration::from_secs(20),
        |s| {
            let u = crate::support::status_unit(s, "flaky").unwrap_or_default();
            u["restarts"] == 1 && u["state"] == "running"
        },
    );
    let (code, v) = doctor(&cfg);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(of(&v, "daemon"), Vec::<serde_json::Value>::new());
    assert_eq!(
        of(&v, "ports"),
        Vec::<serde_json::Value>::new(),
        "web's port is held by the daemon's child: {v:#}"
    );
    let units = of(&v, "units");
    assert_eq!(units.len(), 2, "{v:#}");
    assert_eq!(units[0]["severity"], "error");
    assert_eq!(
        units[0]["message"],
        "unit broken is failed (exit 3 (restart = never))"
    );
    assert_eq!(
        units[0]["fix"],
        "read `prometheus-stack logs broken`, fix the cause, then `prometheus-stack start broken`"
    );
    assert!(v["checks"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("units")));
}
