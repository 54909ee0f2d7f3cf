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

/// `task run postgres-init` as an exported init container runs it: the binary, the
/// config, and the secrets from a mounted Secret (`CREDENTIALS_DIRECTORY`), against a
/// real PostgreSQL; the role it creates logs in with the Secret's password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_run_postgres_init_with_secrets_from_a_mounted_secret() {
    use crate::support::pg::*;
    let dir = reachable_tempdir();
    let port = free_port();
    let plan = pg_plan(
        dir.path(),
        &pg15_bin(),
        port,
        "extensions = []\ndatabases = [\"app\"]",
    );
    let c = Ctx::new(&plan, "postgres", store(&plan));
    let _srv = prepare_and_start(
        &plan,
        &c,
        &dir.path().join("pg.log"),
        std::time::Duration::from_secs(30),
    )
    .await;
    // The Secret's keys, as the kubelet mounts them: one file per secret name.
    let creds = dir.path().join("credentials");
    std::fs::create_dir_all(&creds).unwrap();
    let su = store(&plan).read("postgres-superuser").unwrap();
    std::fs::write(creds.join("postgres-superuser"), &su).unwrap();
    std::fs::write(creds.join("postgres-app"), "from-the-mounted-secret").unwrap();
    let out = bin()
        .args([
            "-c",
            dir.path().join("stack.toml").to_str().unwrap(),
            "task",
            "run",
            "postgres-init",
        ])
        .env("CREDENTIALS_DIRECTORY", &creds)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "task run postgres-init: {err}");
    assert!(
        err.contains("postgres-init: "),
        "logs under the unit's name: {err}"
    );
    let app = connect(port, "app", "from-the-mounted-secret", "app").await;
    assert!(
        app.is_ok(),
        "role app logs in with the mounted secret: {:?}",
        app.err().map(|e| err_text(&e))
    );
    let again = bin()
        .args([
            "-c",
            dir.path().join("stack.toml").to_str().unwrap(),
            "task",
            "run",
            "postgres-init",
        ])
        .env("CREDENTIALS_DIRECTORY", &creds)
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "idempotent: every replica may run it"
    );
}
