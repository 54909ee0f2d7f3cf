//! Errors of the postgres preset's tasks; each says what to fix.

use std::path::PathBuf;

/// What can go wrong preparing, probing or provisioning PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("unit user {user:?} does not exist (create it, e.g. `useradd --system {user}`, or set services.{unit}.user)")]
    NoUser { unit: String, user: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("user {user:?} cannot reach {path}: {blocker} is mode {mode:o} owned by uid {owner}; allow it to enter (chmod o+x {blocker}) or move services.{unit}'s data elsewhere")]
    Unreachable {
        unit: String,
        user: String,
        path: PathBuf,
        blocker: PathBuf,
        mode: u32,
        owner: u32,
    },
    #[error("data dir {path} is owned by uid {owner} but unit {unit} runs as {user:?} (uid {uid}): `chown -R {user}: {path}`")]
    WrongOwner {
        unit: String,
        path: PathBuf,
        owner: u32,
        user: String,
        uid: u32,
    },
    #[error("data dir {path} was created by PostgreSQL {data} but services.{unit}.bin_dir is PostgreSQL {bin} ({bin_dir}): point bin_dir at PostgreSQL {data}, or upgrade the data dir with pg_upgrade")]
    VersionMismatch {
        unit: String,
        path: PathBuf,
        data: String,
        bin: String,
        bin_dir: PathBuf,
    },
    #[error("data dir {path} is in use by a running postgres (pid {pid}) that this daemon did not start: stop it first (`kill -INT {pid}` or `pg_ctl -D {path} stop`); nothing was changed")]
    ForeignPostmaster { path: PathBuf, pid: i32 },
    #[error("{program} not found or not executable: {path} (set services.{unit}.bin_dir to a PostgreSQL bin folder)")]
    NoProgram {
        unit: String,
        program: &'static str,
        path: PathBuf,
    },
    #[error("{path} {why}: refusing to use it (the data dir belongs to the unit's user; remove it, and check who planted it)")]
    Unsafe { path: PathBuf, why: &'static str },
    #[error("initdb of {path} failed ({status}): {output}")]
    Initdb {
        path: PathBuf,
        status: String,
        output: String,
    },
    #[error("`podman run` of {image} for services.{unit} failed: {output} (is the image loaded? `prometheus-stack bundle import BUNDLE`, or `podman image ls`)")]
    Podman {
        unit: String,
        image: String,
        output: String,
    },
    #[error("{0}")]
    SwitchVersion(Box<SwitchRefusal>),
    #[error("secret: {0}")]
    Secret(#[from] crate::secrets::SecretError),
    #[error(
        "cannot connect to PostgreSQL on 127.0.0.1:{port} as {user:?} (database {db:?}): {}",
        super::error_text(source)
    )]
    Connect {
        port: u16,
        user: String,
        db: String,
        source: tokio_postgres::Error,
    },
    #[error("password of {user:?} refused by PostgreSQL on port {port}: the secret {secret:?} does not match the data dir (was it initialized with another password or rotated by hand?)")]
    BadPassword {
        port: u16,
        user: String,
        secret: String,
    },
    #[error("SQL `{sql}` in database {db:?} failed: {}", super::error_text(source))]
    Sql {
        db: String,
        sql: String,
        source: tokio_postgres::Error,
    },
    #[error("SQL `{sql}` in database {db:?} returned {got}")]
    Unexpected {
        db: String,
        sql: String,
        got: String,
    },
    #[error("extension {ext:?} is not available in PostgreSQL {version} ({bin_dir}): install {package}, or remove {ext:?} from services.{unit}.extensions")]
    MissingExtension {
        unit: String,
        ext: String,
        version: String,
        bin_dir: PathBuf,
        package: String,
    },
}

/// The package that provides an extension, for the missing-extension error.
pub fn extension_package(ext: &str, major: &str) -> String {
    match ext {
        "vector" => {
            format!("postgresql-{major}-pgvector (or a PostgreSQL build with pgvector)")
        }
        "pg_search" => "ParadeDB pg_search (a ParadeDB build of PostgreSQL)".into(),
        other => format!("the package providing the {other:?} extension for PostgreSQL {major}"),
    }
}

/// A data dir of another major version than the form about to run it.
#[derive(Debug)]
pub struct SwitchRefusal {
    pub unit: String,
    pub path: PathBuf,
    pub from: String,
    pub to: &'static str,
    pub data: String,
    pub now: String,
}

impl std::fmt::Display for SwitchRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (unit, path, from, to) = (&self.unit, self.path.display(), &self.from, self.to);
        write!(
            f,
            "data dir {path} was last run by the {from} form with PostgreSQL {}, but services.{unit} now runs PostgreSQL {} ({to}); a major version cannot be switched in place. Keep the data: set services.{unit}.runtime back to \"{from}\", start, run `prometheus-stack backup`, stop, move {path} away, set runtime = \"{to}\", start (a fresh initdb), then `prometheus-stack restore FILE`",
            self.data, self.now
        )
    }
}
