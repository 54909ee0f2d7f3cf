//! `backup list` and pruning: the finished backups of a folder, newest first.

use super::BackupError;
use crate::config::{ConfigFile, Source};
use std::path::{Path, PathBuf};

/// Suffix of backup files.
pub const SUFFIX: &str = ".tar.zst";

/// One finished backup.
#[derive(Debug, Clone)]
pub struct Listed {
    pub path: PathBuf,
    pub bytes: u64,
    /// Modification time, `YYYY-MM-DD HH:MM:SS UTC`.
    pub taken: String,
    pub mtime: u64,
}

/// `[backup].dir`, else DATA_DIR/backups.
pub fn backup_dir(cfg: &ConfigFile, src: &Source) -> PathBuf {
    match &cfg.backup.dir {
        Some(d) => d.clone(),
        None => {
            let base = src.base_dir();
            let data = &cfg.stack.data_dir;
            let data = if data.is_absolute() {
                data.clone()
            } else {
                base.join(data)
            };
            data.join("backups")
        }
    }
}

/// Finished backups in `dir` (temp files excluded), newest first.
pub fn list(dir: &Path) -> Result<Vec<Listed>, BackupError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BackupError::io(format!("reading {}", dir.display()))(e)),
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !name.ends_with(SUFFIX) {
            continue;
        }
        let Ok(md) = e.metadata() else { continue };
        if !md.is_file() {
            continue;
        }
        let mtime = md
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
            .unwrap_or(0);
        out.push(Listed {
            path: e.path(),
            bytes: md.len(),
            taken: utc(mtime),
            mtime,
        });
    }
    out.sort_by(|a, b| b.mtime.cmp(&a.mtime).then(b.path.cmp(&a.path)));
    Ok(out)
}

/// Deletes all but the newest `keep` backups of `dir`; returns what was deleted.
pub fn prune(dir: &Path, keep: usize) -> Result<Vec<PathBuf>, BackupError> {
    let mut gone = Vec::new();
    for b in list(dir)?.into_iter().skip(keep.max(1)) {
        std::fs::remove_file(&b.path)
            .map_err(BackupError::io(format!("deleting {}", b.path.display())))?;
        gone.push(b.path);
    }
    Ok(gone)
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(secs: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}
