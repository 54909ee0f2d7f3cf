//! Backups and restores of a whole installation: one streamed, verified file.
//!
//! Layout: a tar inside one zstd stream (the `zstd` crate, content checksum on), entries
//! `config/stack.toml`, `data/secrets/…` and `data/pki/…` (secrets store, internal CA),
//! `postgres/…` (the cluster), `buckets/B` and `objects/N`, then `manifest.json` last
//! (kind, sha256 and size of every entry, versions, timestamps) so the writer streams.
//!
//! PostgreSQL is taken as a **base backup** (`pg_basebackup -Ft -X fetch` to stdout over
//! loopback as the superuser), not as one `pg_dump` per database, because:
//! - it is one consistent point in time for the whole cluster (every database, roles,
//!   grants, Logto's tenant roles) instead of one snapshot per database;
//! - its tar stream names every file with its size, so each becomes an entry of ours
//!   without staging anything (a dump's length is unknown until it ends);
//! - a restore needs no running server: the files go back into an empty data dir and
//!   PostgreSQL replays the fetched WAL on its first start.
//!
//! The price: a restore runs the same major version only. A backup whose major differs
//! from the installed server's is refused with the commands that move the data instead
//! (`pg_dumpall` on the old version, `psql` on the new one).
//!
//! Objects go through the S3 API with the store's root key (every store, every runtime):
//! buckets are listed, then each object streamed by GET into its entry. An object
//! uploaded after its bucket was listed is not in the backup; one overwritten meanwhile is
//! in it whole as either version (the GET's own length and bytes are what is stored).
//!
//! Written to `.NAME.partial-PID` (0600), verified by reading it back, then renamed.

mod archive;
mod create;
mod list;
mod manifest;
mod objects;
mod postgres;
mod restore;
pub mod schedule;
pub mod scheduled;
mod sources;
mod verify;

pub use archive::ArchiveWriter;
pub use create::{create, default_name, Created};
pub use list::{backup_dir, list, prune, utc, Listed};
pub use manifest::{Entry, Kind, Manifest, PgInfo, MANIFEST};
pub use restore::{restore, RestoreOptions, Restored};
pub use sources::{PgSource, S3Source, Sources};
pub use verify::{verify, Verified};

use crate::stack::objects::s3::S3Error;
use std::path::PathBuf;

/// Errors of backup, verify and restore; each names the file, entry or unit at fault.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("backup {file} is damaged in entry {entry}: {reason}")]
    Damaged {
        file: String,
        entry: String,
        reason: String,
    },
    #[error("backup {file} has no manifest.json (truncated after {last}, or not a prometheus-stack backup)")]
    NoManifest { file: String, last: String },
    #[error("backup {file}: bad manifest.json: {reason}")]
    BadManifest { file: String, reason: String },
    #[error("backup {file} does not match its manifest:\n  {}", problems.join("\n  "))]
    Corrupt { file: String, problems: Vec<String> },
    #[error(
        "{entry} changed while it was being read ({got} of {expected} bytes); run the backup again"
    )]
    Changed {
        entry: String,
        expected: u64,
        got: u64,
    },
    #[error("PostgreSQL ({unit}): {reason}")]
    Postgres { unit: String, reason: String },
    #[error("object store: {0}")]
    S3(#[from] S3Error),
    #[error("the backup holds PostgreSQL {backup} data but {server} is PostgreSQL {installed}; a base backup loads into its own major version only. Restore with PostgreSQL {backup} ({setting}), then move the data: `pg_dumpall -h 127.0.0.1 -p PORT -U postgres > all.sql` there and `psql -h 127.0.0.1 -p PORT -U postgres -f all.sql postgres` against PostgreSQL {installed}")]
    MajorMismatch {
        backup: String,
        installed: String,
        /// What runs the server: its bin dir or image.
        server: String,
        /// The config line that would run the backup's major.
        setting: String,
    },
    #[error("{dir} is not empty; restore into an empty data dir, or pass --force to replace what is there")]
    NotEmpty { dir: PathBuf },
    #[error("{0}")]
    Config(String),
}

impl BackupError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
        let what = what.into();
        move |source| BackupError::Io { what, source }
    }
}
