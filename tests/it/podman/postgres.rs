//! The postgres preset in podman through the real daemon binary, on an image built here
//! from the machine's own PostgreSQL 18 + pgvector (no registry): the native tests'
//! assertions (initdb with scram, init, SIGKILL with 10,000 committed rows, SIGINT stop,
//! stale pid after a crash), then moving one data dir between the two forms.

use crate::support::daemon::TestDaemon;
use crate::support::pg::image::pgvector_image;
use crate::support::pg::*;
use crate::support::podman::{cleanup_stack, podman_ok, unique_stack};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const UP: Duration = Duration::from_secs(90);

/// Writes the stack file: one postgres unit, podman (`image`) or native (`bin`).
fn config(dir: &Path, stack: &str, port: u16, form: &Form, more: &str) -> PathBuf {
    let server = match form {
        Form::Podman(image) => format!("runtime = \"podman\"\nimage = \"{image}\""),
        Form::Native(bin) => format!("runtime = \"process\"\nbin_dir = \"{}\"", bin.display()),
    };
    let text = format!(
        "[stack]\nname = \"{stack}\"\ndata_dir = \"{d}/data\"\nruntime_dir = \"{d}/run\"\n\n\
         [control]\nsocket = \"{d}/control.sock\"\n\n\
         [services.postgres]\npreset = \"postgres\"\n{server}\nport = {port}\n\
         settings = {{ shared_buffers = \"48MB\" }}\n{more}\n",
        d = dir.display()
    );
    let p = dir.join("stack.toml");
    std::fs::write(&p, text).unwrap();
    p
}

enum Form {
    Podman(String),
    Native(PathBuf),
}

fn start(cfg: &Path, stack: &str) -> TestDaemon {
    let dir = cfg.parent().unwrap();
    TestDaemon::builder(cfg)
        .socket(&dir.join("control.sock"))
        .log(&dir.join("daemon.log"))
        .append_log()
        .stop_grace(Duration::from_secs(60))
        .cleanup_podman_stack(stack)
        .spawn()
}

fn plan_for(cfg: &Path) -> prometheus_stack::plan::Plan {
    prometheus_stack::plan::build_from_file(cfg, Default::default()).unwrap()
}

/// The postmaster inside the container: the `postgres` child of the unit's main process
/// (catatonit).
fn postmaster_of(unit_pid: i64) -> i32 {
    for _ in 0..400 {
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let Some((comm, rest)) = stat.split_once(") ") else {
                continue;
            };
            let ppid = rest
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<i64>().ok());
            if ppid == Some(unit_pid) && comm.ends_with("(postgres") {
                return pid;
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("no postgres child of {unit_pid}");
}

/// A stand-in consumer on the host: logs in with the DATABASE_URL it is given.
fn standin(dir: &Path, port: u16) -> String {
    format!(
        "[services.standin]\n\
         command = [\"/bin/sh\", \"-c\", \"/usr/lib/postgresql/15/bin/psql \\\"$DATABASE_URL\\\" -Atc 'select current_user' > {d}/standin.out 2>&1; exec sleep 1000\"]\n\
         env = {{ DATABASE_URL = \"postgres://lobechat:${{secret:postgres-lobechat}}@127.0.0.1:{port}/lobechat\" }}\n\
         depends_on = [\"postgres-init\"]\n",
        d = dir.display()
    )
}

/// Writes in 100-row transactions until at least 10,000 rows are committed, then SIGKILLs
/// `victim`; returns the count acknowledged before the kill.
async fn write_then_kill(port: u16, pw: &str, victim: i32) -> u64 {
    let w = connect(port, "lobechat", pw, "lobechat").await.unwrap();
    w.batch_execute("CREATE TABLE rows (n int)").await.unwrap();
    let committed = Arc::new(AtomicU64::new(0));
    let c2 = committed.clone();
    let writer = tokio::spawn(async move {
        let mut w = w;
        loop {
            let Ok(tx) = w.transaction().await else {
                return;
            };
            if tx
                .execute("INSERT INTO rows SELECT generate_series(1, 100)", &[])
                .await
                .is_err()
                || tx.commit().await.is_err()
            {
                return;
            }
            c2.fetch_add(100, Ordering::SeqCst);
        }
    });
    while committed.load(Ordering::SeqCst) < 10_000 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = writer.await;
    committed.load(Ordering::SeqCst)
}

async fn row_count(plan: &prometheus_stack::plan::Plan, port: u16) -> i64 {
    query_value(
        &superuser(plan, port, "lobechat").await,
        "SELECT count(*) FROM rows",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_postgres_initdb_init_sigkill_stop_and_crash_recovery() {
    let image = pgvector_image();
    let dir = reachable_tempdir();
    let stack = unique_stack("pg");
    let port = free_port();
    let cfg = config(
        dir.path(),
        &stack,
        port,
        &Form::Podman(image),
        &standin(dir.path(), port),
    );
    let data = dir.path().join("data/postgres");
    let mut d = start(&cfg, &stack);

    // First start: initdb in the image, healthy by a real login, init, consumer.
    let pg = d.wait_state("postgres", "healthy", UP);
    d.wait_state("postgres-init", "completed", UP);
    d.wait_state("standin", "running", UP);
    let out = dir.path().join("standin.out");
    assert!(crate::support::poll_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&out)
            .ok()
            .filter(|t| t.trim() == "lobechat")
    })
    .is_some());
    assert_eq!(
        std::fs::metadata(&data).unwrap().uid(),
        999,
        "data dir owned by the image's uid"
    );
    let postmaster = postmaster_of(pg["pid"].as_i64().unwrap());
    let proc_uid = std::fs::metadata(format!("/proc/{postmaster}"))
        .unwrap()
        .uid();
    assert_eq!(proc_uid, 999, "the server runs as uid 999");
    let plan = plan_for(&cfg);
    let su = superuser(&plan, port, "postgres").await;
    assert_eq!(
        query_value::<String>(&su, "SHOW shared_buffers").await,
        "48MB"
    );
    let hba = std::fs::read_to_string(data.join("pg_hba.conf")).unwrap();
    let rules: Vec<&str> = hba
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    assert!(
        !rules.is_empty() && rules.iter().all(|l| l.ends_with("scram-sha-256")),
        "{rules:?}"
    );
    let st = store(&plan);
    let lobe_pw = st.read("postgres-lobechat").unwrap();
    let c = connect(port, "lobechat", &lobe_pw, "lobechat")
        .await
        .unwrap();
    c.batch_execute("CREATE TABLE docs (id int, e vector(3)); INSERT INTO docs VALUES (1, '[0,0,1]'), (2, '[5,5,5]');")
        .await
        .unwrap();
    let id: i32 = query_value(&c, "SELECT id FROM docs ORDER BY e <-> '[0,0,0]' LIMIT 1").await;
    assert_eq!(id, 1);

    // No secret in the container's definition (command line, env).
    let inspect = podman_ok(&["inspect", &format!("{stack}-postgres")]);
    for name in ["postgres-superuser", "postgres-logto", "postgres-lobechat"] {
        assert!(
            !inspect.contains(st.read(name).unwrap().as_str()),
            "{name} in podman inspect"
        );
    }

    // SIGKILL of the container's postgres while writing: every committed row survives.
    let before = write_then_kill(port, &lobe_pw, postmaster).await;
    let pg2 = d.wait_unit("postgres", "restarted and healthy", UP, |u| {
        u["state"] == "healthy" && u["pid"] != pg["pid"]
    });
    assert!(pg2["restarts"].as_u64().unwrap() >= 1);
    let n = row_count(&plan, port).await;
    assert!(before >= 10_000);
    assert!(
        n as u64 >= before && n as u64 <= before + 100,
        "{n} rows after the kill, {before} acknowledged"
    );

    // Stop: SIGINT reaches the postmaster (fast shutdown), clean data dir.
    drop((su, c));
    d.stop();
    assert!(d.log_text().contains("received fast shutdown request"));
    assert!(!data.join("postmaster.pid").exists());

    // Second start: no initdb, init changes nothing; then a crash of daemon + container.
    let mut d = start(&cfg, &stack);
    let pg3 = d.wait_state("postgres", "healthy", UP);
    d.wait_state("postgres-init", "completed", UP);
    assert!(d.unit_logs("postgres-init").contains("up to date"));
    assert_eq!(d.log_text().matches("initdb done").count(), 1);
    let pm3 = postmaster_of(pg3["pid"].as_i64().unwrap());
    d.kill9();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pm3),
        nix::sys::signal::Signal::SIGKILL,
    );
    for _ in 0..400 {
        if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pm3), None).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        data.join("postmaster.pid").exists(),
        "the crash leaves postmaster.pid"
    );
    let mut d = start(&cfg, &stack);
    d.wait_state("postgres", "healthy", UP);
    assert!(
        d.unit_logs("postgres").contains("removed stale"),
        "{}",
        d.unit_logs("postgres")
    );
    assert_eq!(row_count(&plan, port).await, n);

    // A backup while it runs: pg_basebackup from the image, restorable as the image's uid.
    let file = dir.path().join("pg.tar.zst");
    d.cli_ok(&["backup", "--to", file.to_str().unwrap()]);
    let verified = d.cli_ok(&["backup", "verify", file.to_str().unwrap()]);
    assert!(verified.contains(": OK ("), "{verified}");
    let restored = dir.path().join("restored");
    let r = d.cli(&[
        "restore",
        file.to_str().unwrap(),
        "--data-dir",
        restored.to_str().unwrap(),
    ]);
    assert!(
        r.status.code() == Some(0),
        "{}{}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    );
    let pg_version = restored.join("postgres/PG_VERSION");
    assert_eq!(std::fs::metadata(&pg_version).unwrap().uid(), 999);
    d.stop();
    cleanup_stack(&stack);
}

fn postgres_uid() -> u32 {
    nix::unistd::User::from_name("postgres")
        .unwrap()
        .unwrap()
        .uid
        .as_raw()
}

/// Runs the stack until init completed, asserting the data dir's owner; stops it.
async fn run_form(cfg: &Path, stack: &str, owner: u32) -> String {
    let mut d = start(cfg, stack);
    d.wait_state("postgres", "healthy", UP);
    d.wait_state("postgres-init", "completed", UP);
    let data = cfg.parent().unwrap().join("data/postgres");
    assert_eq!(std::fs::metadata(&data).unwrap().uid(), owner);
    let logs = d.unit_logs("postgres");
    d.stop();
    logs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_runtime_keeps_the_data_both_ways() {
    let image = pgvector_image();
    let dir = reachable_tempdir();
    let stack = unique_stack("pgsw");
    let port = free_port();
    let native = Form::Native(pgvector_bin());
    let cfg = config(dir.path(), &stack, port, &native, "");
    let plan = plan_for(&cfg);

    // Native first: a table with rows.
    let mut d = start(&cfg, &stack);
    d.wait_state("postgres-init", "completed", UP);
    let pw = store(&plan).read("postgres-lobechat").unwrap();
    let c = connect(port, "lobechat", &pw, "lobechat").await.unwrap();
    c.batch_execute("CREATE TABLE kept AS SELECT generate_series(1, 1234) AS n")
        .await
        .unwrap();
    drop(c);
    d.stop();

    // Same major (18) in the image: the tree is given to uid 999, the rows are there.
    config(dir.path(), &stack, port, &Form::Podman(image), "");
    let logs = run_form(&cfg, &stack, 999).await;
    assert!(logs.contains("was last run by the process form"), "{logs}");
    let files = std::fs::read_dir(dir.path().join("data/postgres/base")).unwrap();
    for f in files.flatten() {
        assert_eq!(f.metadata().unwrap().uid(), 999, "{}", f.path().display());
    }
    let mut d = start(&cfg, &stack);
    d.wait_state("postgres", "healthy", UP);
    let su = superuser(&plan, port, "lobechat").await;
    assert_eq!(
        query_value::<i64>(&su, "SELECT count(*) FROM kept").await,
        1234
    );
    su.batch_execute("INSERT INTO kept VALUES (0)")
        .await
        .unwrap();
    drop(su);
    d.stop();

    // And back to the native form.
    config(dir.path(), &stack, port, &native, "");
    let logs = run_form(&cfg, &stack, postgres_uid()).await;
    assert!(logs.contains("was last run by the podman form"), "{logs}");
    let mut d = start(&cfg, &stack);
    d.wait_state("postgres", "healthy", UP);
    let su = superuser(&plan, port, "lobechat").await;
    assert_eq!(
        query_value::<i64>(&su, "SELECT count(*) FROM kept").await,
        1235
    );
    drop(su);
    d.stop();
    cleanup_stack(&stack);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_to_another_major_is_refused_with_backup_and_restore() {
    let image = pgvector_image();
    let dir = reachable_tempdir();
    let stack = unique_stack("pgmm");
    let port = free_port();
    // Debian's PostgreSQL 15 natively, the image is 18.
    let native = Form::Native(pg15_bin());
    let cfg = config(dir.path(), &stack, port, &native, "extensions = []");
    run_form(&cfg, &stack, postgres_uid()).await;

    config(
        dir.path(),
        &stack,
        port,
        &Form::Podman(image),
        "extensions = []",
    );
    let mut d = start(&cfg, &stack);
    let u = d.wait_unit("postgres", "refused", UP, |u| {
        u["last_exit"]
            .as_str()
            .is_some_and(|e| e.contains("restore"))
    });
    let e = u["last_exit"].as_str().unwrap();
    for want in [
        "last run by the process form with PostgreSQL 15",
        "now runs PostgreSQL 18 (podman)",
        "set services.postgres.runtime back to \"process\"",
        "`prometheus-stack backup`",
        "`prometheus-stack restore FILE`",
    ] {
        assert!(e.contains(want), "{want:?} missing from {e}");
    }
    d.stop();
    let data = dir.path().join("data/postgres");
    assert_eq!(
        std::fs::metadata(&data).unwrap().uid(),
        postgres_uid(),
        "untouched"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("PG_VERSION"))
            .unwrap()
            .trim(),
        "15"
    );
    cleanup_stack(&stack);
}
