//! Test helpers for the logto/lobechat tests: a real PostgreSQL 15 (Debian), started as
//! user `postgres` on a port from this suite's range, and Logto-shaped tables.
#![allow(dead_code)]

pub mod daemon;
pub mod direct;
pub mod image;
pub mod standins;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's PostgreSQL 15 binaries.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The fixture: tables shaped like Logto's.
pub fn schema_sql() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/logto/logto_schema.sql")
}

/// The `[stack]`, `[control]` and `[proxy]` tables of the daemon tests: domain
/// example.test, air-gapped, everything under `dir` (`data`, `run`, `control.sock`), the
/// proxy on 127.0.0.1:`https` with the internal CA; `stack_extra` adds `[stack]` lines.
pub fn stack_tables(dir: &Path, https: u16, stack_extra: &str) -> String {
    format!(
        r#"
[stack]
{stack_extra}domain = "example.test"
data_dir = "{data}"
runtime_dir = "{run}"
air_gapped = true

[control]
socket = "{sock}"

[proxy]
https = "127.0.0.1:{https}"
tls = "internal"
"#,
        data = dir.join("data").display(),
        run = dir.join("run").display(),
        sock = dir.join("control.sock").display(),
    )
}

/// How the Logto and LobeChat stand-ins run: native releases or podman images.
pub enum Apps<'a> {
    Native { logto: &'a Path, lobechat: &'a Path },
    Podman { logto: &'a str, lobechat: &'a str },
}

/// Where the Logto (public and admin) and LobeChat stand-ins listen.
pub struct AppPorts {
    pub logto: u16,
    pub admin: u16,
    pub lobechat: u16,
}

/// `[services.logto]` and `[services.lobechat]` running `apps` on `ports`; the extras add
/// lines to each table (e.g. [`logto_db_env`], [`lobechat_db_env`], `edition`).
pub fn app_tables(
    apps: &Apps,
    ports: &AppPorts,
    logto_extra: &str,
    lobechat_extra: &str,
) -> String {
    let (logto_run, lobechat_run) = match apps {
        Apps::Native { logto, lobechat } => {
            let node = standins::node();
            (
                format!(
                    "release_dir = \"{}\"\nnode = \"{}\"",
                    logto.display(),
                    node.display()
                ),
                format!(
                    "release_dir = \"{}\"\nnode = \"{}\"",
                    lobechat.display(),
                    node.display()
                ),
            )
        }
        Apps::Podman { logto, lobechat } => (
            format!("runtime = \"podman\"\nimage = \"{logto}\""),
            format!("runtime = \"podman\"\nimage = \"{lobechat}\""),
        ),
    };
    format!(
        r#"
[services.logto]
preset = "logto"
{logto_run}
port = {logto}
ports = {{ admin = {admin} }}
{logto_extra}

[services.lobechat]
preset = "lobechat"
{lobechat_run}
port = {lobechat}
{lobechat_extra}
"#,
        logto = ports.logto,
        admin = ports.admin,
        lobechat = ports.lobechat,
    )
}

/// Logto's `env.DB_URL` for the test's PostgreSQL on `pg` (password from the store).
pub fn logto_db_env(pg: u16) -> String {
    format!(
        "env = {{ DB_URL = \"postgres://logto:${{secret:postgres-logto}}@127.0.0.1:{pg}/logto\" }}"
    )
}

/// LobeChat's `env.DATABASE_URL` for the test's PostgreSQL on `pg` (password from the store).
pub fn lobechat_db_env(pg: u16) -> String {
    format!("env = {{ DATABASE_URL = \"postgres://lobechat:${{secret:postgres-lobechat}}@127.0.0.1:{pg}/lobechat\" }}")
}

/// Passwords of the `logto` and `lobechat` roles of [`Postgres::create_stack_dbs`].
pub const LOGTO_DB_PASSWORD: &str = "logtoPw";
pub const LOBECHAT_DB_PASSWORD: &str = "lobePw";

/// The secrets store under `data` holding the passwords of [`Postgres::create_stack_dbs`]
/// (what the postgres preset would have generated).
pub fn stack_db_passwords(data: &Path) -> prometheus_stack::secrets::SecretStore {
    let store = prometheus_stack::secrets::SecretStore::with_credentials(data, None);
    store
        .write("postgres-logto", LOGTO_DB_PASSWORD, None)
        .unwrap();
    store
        .write("postgres-lobechat", LOBECHAT_DB_PASSWORD, None)
        .unwrap();
    store
}

/// A running PostgreSQL in a temporary folder; stopped (SIGINT, fast shutdown) on drop.
pub struct Postgres {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

fn require(path: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: run tests/setup.sh (installs Debian's postgresql)"
    );
}

/// The command run as user `postgres` (tests run as root; PostgreSQL refuses root).
fn as_postgres(cmd: &str, args: &[&str]) -> Command {
    use std::os::unix::process::CommandExt;
    let user = nix::unistd::User::from_name("postgres")
        .unwrap()
        .expect("user postgres is missing: run tests/setup.sh");
    let mut c = Command::new(cmd);
    c.args(args)
        .uid(user.uid.as_raw())
        .gid(user.gid.as_raw())
        .current_dir("/");
    c
}

impl Postgres {
    /// initdb + postgres on `port` (loopback TCP with passwords, local socket trusted).
    pub fn start(port: u16) -> Postgres {
        require(&format!("{PG_BIN}/postgres"));
        let dir = tempfile::Builder::new()
            .prefix("pstest-logto-pg")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let st = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success());
        let out = as_postgres(
            &format!("{PG_BIN}/initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
            ],
        )
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let child = as_postgres(
            &format!("{PG_BIN}/postgres"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-c",
                &format!("port={port}"),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                &format!("unix_socket_directories={}", dir.path().display()),
                "-c",
                "fsync=off",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        let pg = Postgres { port, dir, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = pg.psql("postgres", "SELECT 1").is_ok();
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        pg
    }

    /// Runs SQL as the superuser over the local socket.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = as_postgres(
            &format!("{PG_BIN}/psql"),
            &[
                "-h",
                self.dir.path().to_str().unwrap(),
                "-p",
                &self.port.to_string(),
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
            ],
        )
        .output()
        .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    }

    /// A login role owning a database of the same name.
    pub fn create_db(&self, name: &str, password: &str) {
        self.psql(
            "postgres",
            &format!("CREATE ROLE {name} LOGIN PASSWORD '{password}'"),
        )
        .unwrap();
        self.psql("postgres", &format!("CREATE DATABASE {name} OWNER {name}"))
            .unwrap();
    }

    /// The `logto` and `lobechat` roles and databases, as the postgres preset makes them.
    pub fn create_stack_dbs(&self) {
        self.create_db("logto", LOGTO_DB_PASSWORD);
        self.create_db("lobechat", LOBECHAT_DB_PASSWORD);
    }

    /// Loads the Logto-shaped fixture into `db`, owned by `owner` (as the seed would).
    pub fn load_logto_schema(&self, db: &str, owner: &str) {
        let sql = std::fs::read_to_string(schema_sql()).unwrap();
        self.psql(db, &format!("SET ROLE {owner};\n{sql}")).unwrap();
    }

    /// Exactly one Traditional (web) application in Logto: provisioning never made a second.
    pub fn assert_one_traditional_app(&self) {
        assert_eq!(
            self.psql(
                "logto",
                "SELECT count(*) FROM applications WHERE type = 'Traditional'"
            )
            .unwrap(),
            "1"
        );
    }

    /// `postgres://USER:PASSWORD@127.0.0.1:PORT/DB` (password percent-encoded).
    pub fn url(&self, user: &str, password: &str, db: &str) -> String {
        let pw: String =
            percent_encoding::utf8_percent_encode(password, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        format!("postgres://{user}:{pw}@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        crate::support::stop_child(
            &mut self.child,
            nix::sys::signal::Signal::SIGINT,
            Duration::from_secs(10),
        );
    }
}
