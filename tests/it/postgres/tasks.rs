//! The postgres preset's tasks (prepare, probe, init, rotate) run directly against real
//! PostgreSQL servers: Debian's 15, and PostgreSQL 18 + pgvector from PyPI.

use crate::support::pg::*;
use prometheus_stack::secrets::rotate::rotate;
use prometheus_stack::secrets::SecretStore;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const UP: Duration = Duration::from_secs(30);

fn postgres_uid() -> u32 {
    nix::unistd::User::from_name("postgres")
        .unwrap()
        .expect("user postgres exists (run tests/setup.sh)")
        .uid
        .as_raw()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_initdb_roles_isolation_and_idempotent_second_start() {
    let dir = reachable_tempdir();
    let port = free_port();
    let plan = pg_plan(
        dir.path(),
        &pg15_bin(),
        port,
        "extensions = []\nsettings = { shared_buffers = \"32MB\", work_mem = \"8MB\" }",
    );
    let c = Ctx::new(&plan, "postgres", store(&plan));
    let data = plan.stack.data_dir.join("postgres");

    prepare(&plan, &c).await.expect("first prepare runs initdb");
    assert!(data.join("PG_VERSION").is_file());
    let md = std::fs::metadata(&data).unwrap();
    assert_eq!(md.uid(), postgres_uid(), "data dir owned by the unit user");
    assert_eq!(md.mode() & 0o777, 0o700);
    let hba = std::fs::read_to_string(data.join("pg_hba.conf")).unwrap();
    let rules: Vec<&str> = hba
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .collect();
    assert!(
        !rules.is_empty() && rules.iter().all(|l| l.ends_with("scram-sha-256")),
        "{rules:?}"
    );
    let secret = plan.stack.data_dir.join("secrets/postgres-superuser");
    assert_eq!(
        std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!plan
        .stack
        .runtime_dir
        .join("postgres/.initdb-pwfile")
        .exists());

    let mut srv = Server::start_healthy(&plan, &c, &dir.path().join("pg.log"), UP).await;
    assert!(
        plan.stack
            .runtime_dir
            .join(format!("postgres/.s.PGSQL.{port}"))
            .exists(),
        "socket under the runtime dir"
    );
    let su = superuser(&plan, port, "postgres").await;
    let sb: String = query_value(&su, "SHOW shared_buffers").await;
    assert_eq!(sb, "32MB");
    let la: String = query_value(&su, "SHOW listen_addresses").await;
    assert_eq!(la, "127.0.0.1");
    let sysid: i64 = query_value(&su, "SELECT system_identifier FROM pg_control_system()").await;

    // Wrong password: the probe fails (a real login, not a TCP check).
    let bad = SecretStore::with_credentials(&plan.stack.data_dir, Some(dir.path().join("creds")));
    std::fs::create_dir_all(dir.path().join("creds")).unwrap();
    std::fs::write(dir.path().join("creds/postgres-superuser"), "wrong").unwrap();
    let cbad = Ctx::new(&plan, "postgres", bad);
    let e = probe(&plan, &cbad).await.unwrap_err();
    assert!(e.contains("does not match"), "{e}");

    let ci = Ctx::new(&plan, "postgres-init", store(&plan));
    init(&plan, &ci).await.expect("init");
    let first = ci.take();
    assert!(first.iter().any(|l| l == "created role logto"), "{first:?}");
    assert!(
        first.iter().any(|l| l == "created database lobechat"),
        "{first:?}"
    );
    let hashes = |rows: Vec<tokio_postgres::Row>| -> Vec<(String, String)> {
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    let q = "SELECT rolname::text, coalesce(rolpassword, '') FROM pg_authid ORDER BY 1";
    let before = hashes(su.query(q, &[]).await.unwrap());

    init(&plan, &ci).await.expect("second init");
    assert_eq!(
        ci.take(),
        vec!["roles, databases and extensions are up to date".to_string()],
        "second run changes nothing"
    );
    assert_eq!(
        before,
        hashes(su.query(q, &[]).await.unwrap()),
        "no hash rewritten"
    );

    // Each role: its own database yes, the other's and postgres no.
    let st = store(&plan);
    for (role, other) in [("logto", "lobechat"), ("lobechat", "logto")] {
        let pw = st.read(&format!("postgres-{role}")).unwrap();
        let own = connect(port, role, &pw, role).await.expect("own database");
        own.batch_execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
            .await
            .expect("role can create tables in its database");
        for db in [other, "postgres"] {
            let e = connect(port, role, &pw, db).await.err().unwrap_or_else(|| {
                panic!("{role} must not connect to {db}");
            });
            assert!(
                err_text(&e).contains("42501"),
                "{role}->{db}: {}",
                err_text(&e)
            );
        }
    }
    drop(su);
    srv.stop();
    assert!(!data.join("postmaster.pid").exists());

    // Second start on the same data dir: no initdb, same cluster.
    let c2 = Ctx::new(&plan, "postgres", store(&plan));
    prepare(&plan, &c2).await.expect("second prepare");
    assert!(
        !c2.lines().iter().any(|l| l.contains("initdb")),
        "{:?}",
        c2.lines()
    );
    let _srv = Server::start_healthy(&plan, &c2, &dir.path().join("pg2.log"), UP).await;
    let su = superuser(&plan, port, "postgres").await;
    let sysid2: i64 = query_value(&su, "SELECT system_identifier FROM pg_control_system()").await;
    assert_eq!(sysid, sysid2, "same cluster reused");
    init(&plan, &ci).await.expect("init after restart");
    assert_eq!(ci.take().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_extension_names_the_package() {
    let dir = reachable_tempdir();
    let port = free_port();
    let plan15 = pg_plan(dir.path(), &pg15_bin(), port, "extensions = [\"vector\"]");
    let c = Ctx::new(&plan15, "postgres", store(&plan15));
    let _srv = prepare_and_start(&plan15, &c, &dir.path().join("pg.log"), UP).await;
    let ci = Ctx::new(&plan15, "postgres-init", store(&plan15));
    let e = init(&plan15, &ci).await.unwrap_err();
    assert!(
        e.contains("extension \"vector\" is not available in PostgreSQL 15")
            && e.contains("postgresql-15-pgvector"),
        "{e}"
    );
    // Nothing half-made: the check runs before any role is created.
    let su = superuser(&plan15, port, "postgres").await;
    let n: i64 = query_value(
        &su,
        "SELECT count(*) FROM pg_roles WHERE rolname IN ('logto','lobechat')",
    )
    .await;
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vector_extension_created_for_real_with_pgvector_build() {
    let dir = reachable_tempdir();
    let port = free_port();
    let plan = pg_plan(
        dir.path(),
        &pgvector_bin(),
        port,
        "extensions = [\"vector\"]",
    );
    let c = Ctx::new(&plan, "postgres", store(&plan));
    prepare(&plan, &c).await.expect("initdb with PostgreSQL 18");
    let srv = Server::start_healthy(&plan, &c, &dir.path().join("pg.log"), UP).await;
    let ci = Ctx::new(&plan, "postgres-init", store(&plan));
    init(&plan, &ci)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", srv.log_text()));
    let lines = ci.take();
    assert!(
        lines
            .iter()
            .any(|l| l == "created extension vector in lobechat"),
        "{lines:?}"
    );
    let pw = store(&plan).read("postgres-lobechat").unwrap();
    let lc = connect(port, "lobechat", &pw, "lobechat").await.unwrap();
    lc.batch_execute(
        "CREATE TABLE items (id int, embedding vector(3));
         INSERT INTO items VALUES (1, '[1,2,3]'), (2, '[4,5,6]'), (3, '[1,1,1]');",
    )
    .await
    .expect("vector(3) column as the consumer role");
    let rows = lc
        .query(
            "SELECT id FROM items ORDER BY embedding <-> '[3,1,2]' LIMIT 3",
            &[],
        )
        .await
        .unwrap();
    let ids: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, vec![3, 1, 2]);
    let ver: String = query_value(
        &superuser(&plan, port, "lobechat").await,
        "SELECT extversion FROM pg_extension WHERE extname = 'vector'",
    )
    .await;
    eprintln!("pgvector {ver}");
    init(&plan, &ci).await.unwrap();
    assert_eq!(ci.take().len(), 1, "second run changes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_foreign_postmaster_is_refused_untouched_and_stale_pid_recovered() {
    let dir = reachable_tempdir();
    let port = free_port();
    let plan = pg_plan(dir.path(), &pg15_bin(), port, "extensions = []");
    let c = Ctx::new(&plan, "postgres", store(&plan));
    let data = plan.stack.data_dir.join("postgres");
    let mut srv = prepare_and_start(&plan, &c, &dir.path().join("pg.log"), UP).await;

    let pidfile = data.join("postmaster.pid");
    let before = std::fs::read(&pidfile).unwrap();
    let e = prepare(&plan, &c).await.unwrap_err();
    assert!(
        e.contains(&format!("in use by a running postgres (pid {})", srv.pid()))
            && e.contains("nothing was changed"),
        "{e}"
    );
    assert_eq!(
        std::fs::read(&pidfile).unwrap(),
        before,
        "pid file untouched"
    );
    probe(&plan, &c)
        .await
        .expect("the live server is untouched");

    // Commit rows, SIGKILL the whole group: the stale pid file stays behind.
    let su = superuser(&plan, port, "postgres").await;
    su.batch_execute("CREATE TABLE rows (n int)").await.unwrap();
    su.execute("INSERT INTO rows SELECT generate_series(1, 10000)", &[])
        .await
        .unwrap();
    drop(su);
    srv.kill_group();
    assert!(pidfile.exists(), "SIGKILL leaves postmaster.pid");

    c.take();
    prepare(&plan, &c).await.expect("stale pid file handled");
    assert!(
        c.lines().iter().any(|l| l.contains("removed stale")),
        "{:?}",
        c.lines()
    );
    let _srv = Server::start_healthy(&plan, &c, &dir.path().join("pg2.log"), UP).await;
    let n: i64 = query_value(
        &superuser(&plan, port, "postgres").await,
        "SELECT count(*) FROM rows",
    )
    .await;
    assert_eq!(n, 10000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pid_file_of_a_reused_pid_is_stale() {
    let dir = reachable_tempdir();
    let data = dir.path().join("d");
    std::fs::create_dir(&data).unwrap();
    use prometheus_stack::stack::postgres::{inspect_pid_file, PidFile};
    assert_eq!(inspect_pid_file(&data), PidFile::Absent);
    // Our own pid is alive but is not a postgres.
    std::fs::write(
        data.join("postmaster.pid"),
        format!("{}\n{}\n", std::process::id(), data.display()),
    )
    .unwrap();
    assert!(matches!(inspect_pid_file(&data), PidFile::Reused(_)));
    std::fs::write(data.join("postmaster.pid"), "999999999\n").unwrap();
    assert!(matches!(inspect_pid_file(&data), PidFile::Stale(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_changes_password_and_restarts_consumers() {
    let dir = reachable_tempdir();
    let port = free_port();
    let plan = plan(
        dir.path(),
        &format!(
            "{}\n[services.app]\ncommand = [\"/bin/sleep\", \"60\"]\n\
             env = {{ URL = \"${{secret:postgres-logto}}\" }}\n",
            pg_toml(dir.path(), &pg15_bin(), port, "extensions = []")
        ),
    );
    let st = store(&plan);
    let c = Ctx::new(&plan, "postgres", st.clone());
    let _srv = prepare_and_start(&plan, &c, &dir.path().join("pg.log"), UP).await;
    init(&plan, &Ctx::new(&plan, "postgres-init", st.clone()))
        .await
        .unwrap();

    for (secret, role, db) in [
        ("postgres-logto", "logto", "logto"),
        ("postgres-superuser", "postgres", "postgres"),
    ] {
        let old = st.read(secret).unwrap();
        let restarted = Arc::new(Mutex::new(Vec::new()));
        let r = restarted.clone();
        let out = rotate(
            Arc::new(plan.clone()),
            &st,
            secret,
            Arc::new(|l| eprintln!("{l}")),
            move |u| {
                r.lock().unwrap().push(u);
                async { Ok(()) }
            },
        )
        .await
        .unwrap_or_else(|e| panic!("rotate {secret}: {e}"));
        let new = st.read(secret).unwrap();
        assert_ne!(old, new);
        assert!(!st.path(&format!("{secret}.next")).exists());
        let Err(e) = connect(port, role, &old, db).await else {
            panic!("old password of {role} still accepted");
        };
        assert!(err_text(&e).contains("28P01"), "{}", err_text(&e));
        connect(port, role, &new, db).await.expect("new works");
        if secret == "postgres-logto" {
            assert_eq!(out.restarted, vec!["app".to_string()]);
            assert_eq!(*restarted.lock().unwrap(), vec!["app".to_string()]);
        } else {
            assert!(out.restarted.is_empty());
        }
    }
    probe(&plan, &c)
        .await
        .expect("probe uses the rotated superuser password");
    // A failing rotate task keeps the old value.
    let before = st.read("postgres-lobechat").unwrap();
    drop(_srv);
    let e = rotate(
        Arc::new(plan.clone()),
        &st,
        "postgres-lobechat",
        Arc::new(|l| eprintln!("{l}")),
        |_| async { Ok(()) },
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("was not changed"), "{e}");
    assert_eq!(st.read("postgres-lobechat").unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_credential_wins_for_the_superuser_password() {
    let dir = reachable_tempdir();
    let port = free_port();
    let plan = pg_plan(dir.path(), &pg15_bin(), port, "extensions = []");
    let creds = dir.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(
        creds.join("postgres-superuser"),
        "from-systemd-Credential\n",
    )
    .unwrap();
    let st = SecretStore::with_credentials(&plan.stack.data_dir, Some(creds));
    let c = Ctx::new(&plan, "postgres", st.clone());
    prepare(&plan, &c).await.unwrap();
    assert!(
        !plan
            .stack
            .data_dir
            .join("secrets/postgres-superuser")
            .exists(),
        "no store file when systemd provides the credential"
    );
    let _srv = Server::start_healthy(&plan, &c, &dir.path().join("pg.log"), UP).await;
    connect(port, "postgres", "from-systemd-Credential", "postgres")
        .await
        .expect("initdb used the credential");
    let e = rotate(
        Arc::new(plan.clone()),
        &st,
        "postgres-superuser",
        Arc::new(|_| {}),
        |_| async { Ok(()) },
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("CREDENTIALS_DIRECTORY"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_dir_of_another_major_version_is_refused() {
    let dir = reachable_tempdir();
    let port = free_port();
    let p18 = pg_plan(dir.path(), &pgvector_bin(), port, "");
    prepare(&p18, &Ctx::new(&p18, "postgres", store(&p18)))
        .await
        .expect("initdb with PostgreSQL 18");
    let p15 = pg_plan(dir.path(), &pg15_bin(), port, "");
    let e = prepare(&p15, &Ctx::new(&p15, "postgres", store(&p15)))
        .await
        .unwrap_err();
    assert!(
        e.contains("was created by PostgreSQL 18 but services.postgres.bin_dir is PostgreSQL 15"),
        "{e}"
    );
}
