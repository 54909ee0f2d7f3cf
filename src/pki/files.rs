//! File writes for the PKI: atomic (temp file + rename, so a watcher never reads half a
//! file), keys 0600, certificates 0644.

use super::PkiError;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `dir` (0755: units read `ca.crt` from it) with its parents.
pub(super) fn create_dir(dir: &Path) -> Result<(), PkiError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(io_err(dir))
}

fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), PkiError> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(data).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// Writes a private key readable by the owner only.
pub(super) fn write_private(path: &Path, data: &[u8]) -> Result<(), PkiError> {
    write_atomic(path, data, 0o600)
}

/// Writes a certificate (world-readable).
pub(super) fn write_public(path: &Path, data: &[u8]) -> Result<(), PkiError> {
    write_atomic(path, data, 0o644)
}

/// Reads a PEM file as text.
pub(super) fn read_text(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(io_err(path))
}
