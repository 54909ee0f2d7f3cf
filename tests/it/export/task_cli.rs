//! `task run` and `task wait` as the exported init containers call them.

use std::net::TcpListener;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_prometheus-stack"))
}

/// A config whose one unit is named `localhost`, so `task wait localhost` resolves here.
fn config(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let p = dir.join("stack.toml");
    std::fs::write(
        &p,
        format!(
            "[stack]\nname = \"t\"\ndata_dir = \"{}\"\n\n[services.localhost]\nruntime = \"process\"\ncommand = [\"/bin/true\"]\nport = {port}\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    p
}

#[test]
fn task_wait_returns_once_the_service_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let cfg = config(dir.path(), port);
    let ok = bin()
        .args([
            "-c",
            cfg.to_str().unwrap(),
            "task",
            "wait",
            "localhost",
            "--timeout",
            "5",
        ])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    drop(l);
    let closed = bin()
        .args([
            "-c",
            cfg.to_str().unwrap(),
            "task",
            "wait",
            "localhost",
            "--timeout",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!closed.status.success());
    assert!(String::from_utf8_lossy(&closed.stderr).contains("still refuses connections"));
}

#[test]
fn task_run_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 1);
    let missing = bin()
        .args(["-c", cfg.to_str().unwrap(), "task", "run", "nope"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no unit \"nope\""));
    let program = bin()
        .args(["-c", cfg.to_str().unwrap(), "task", "run", "localhost"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&program.stderr);
    assert!(
        !program.status.success() && err.contains("runs a program, not a task"),
        "{err}"
    );
}
