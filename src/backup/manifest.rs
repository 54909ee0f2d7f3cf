//! `manifest.json`: the last entry of a backup, listing every other entry with its kind,
//! sha256 and size, plus the versions and the moment it was taken.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Name of the manifest entry inside the archive.
pub const MANIFEST: &str = "manifest.json";
/// Bumped when the layout changes incompatibly.
pub const FORMAT: u32 = 1;

/// The backup's table of contents.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Manifest {
    pub format: u32,
    /// `prometheus-stack VERSION`.
    pub created_by: String,
    /// Seconds since the epoch when the backup started (the databases' snapshot follows it
    /// within the checkpoint time; objects listed after it).
    pub started_unix: u64,
    /// Seconds since the epoch when the last entry was written.
    pub finished_unix: u64,
    /// `[stack].name` of the config backed up.
    pub stack: String,
    /// The config file's path at backup time (restored there unless told otherwise).
    pub config_path: Option<PathBuf>,
    /// `[stack].data_dir` at backup time (restored there unless `--data-dir`).
    pub data_dir: PathBuf,
    /// The object store, when the config has one.
    pub s3: Option<S3Info>,
    /// The PostgreSQL cluster, when the config has the postgres preset.
    pub postgres: Option<PgInfo>,
    /// Images of the plan's podman units (informative: bundles carry images, not backups).
    pub images: Vec<String>,
    /// Every other entry, in archive order.
    pub entries: Vec<Entry>,
}

/// The PostgreSQL cluster in the backup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PgInfo {
    /// The postgres unit (its data dir is DATA_DIR/UNIT).
    pub unit: String,
    /// `server_version` (e.g. "18.1").
    pub version: String,
    /// The major version a restore must run (the data dir's PG_VERSION).
    pub major: String,
    /// Unix user owning the data dir (None: the daemon's own user).
    pub user: Option<String>,
    /// The server's bin dir at backup time (a restore checks its major there).
    pub bin_dir: PathBuf,
    /// The podman form's image (a restore checks its major in it); None: native.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Unix group owning the data dir (the podman form's numeric gid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl PgInfo {
    /// What runs the server, for messages: the image or the bin dir.
    pub fn server(&self) -> String {
        match &self.image {
            Some(image) => format!("image {image}"),
            None => self.bin_dir.display().to_string(),
        }
    }
    /// The config line that would run PostgreSQL `major` the same way.
    pub fn setting_for(&self, major: &str) -> String {
        match &self.image {
            Some(_) => format!(
                "[services.{}].image = \"{}\"",
                self.unit,
                crate::stack::postgres::pgvector_image(major)
            ),
            None => format!(
                "[services.{}].bin_dir = \"/usr/lib/postgresql/{major}/bin\"",
                self.unit
            ),
        }
    }
}

/// The object store in the backup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct S3Info {
    /// `services.NAME` of the store.
    pub unit: String,
    /// Loopback endpoint; a restore sends the objects there with the restored root key.
    pub endpoint: String,
}

/// One entry of the archive.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the tar.
    pub path: String,
    /// Lowercase hex of the content.
    pub sha256: String,
    pub size: u64,
    #[serde(flatten)]
    pub kind: Kind,
}

/// What an entry holds and where a restore puts it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Kind {
    /// The config file.
    Config,
    /// A file of DATA_DIR (secrets, internal CA): `rel` below DATA_DIR, with `mode`.
    Data { rel: String, mode: u32 },
    /// A file (or folder when `dir`) of the PostgreSQL data dir, `rel` below it.
    Pg { rel: String, mode: u32, dir: bool },
    /// One object.
    Object { bucket: String, key: String },
    /// A bucket (no content): restored even when empty.
    Bucket { bucket: String },
}

impl Manifest {
    /// Total bytes of content.
    pub fn content_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
    /// Number of objects.
    pub fn objects(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e.kind, Kind::Object { .. }))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_with_their_kind() {
        let e = Entry {
            path: "objects/000001".into(),
            sha256: "ab".into(),
            size: 3,
            kind: Kind::Object {
                bucket: "lobe".into(),
                key: "a/../b c".into(),
            },
        };
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.contains("\"kind\":\"object\""), "{text}");
        assert_eq!(serde_json::from_str::<Entry>(&text).unwrap(), e);
    }
}
