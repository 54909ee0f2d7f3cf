//! `backup verify FILE`: reads the whole archive back, hashing every entry, and compares
//! it with the manifest; damage and mismatches name the entry.

use super::archive::{check, read_entries};
use super::manifest::Manifest;
use super::BackupError;
use std::path::Path;

/// A backup that read back whole and matched its manifest.
#[derive(Debug)]
pub struct Verified {
    pub manifest: Manifest,
    /// Bytes of the file on disk (compressed).
    pub file_bytes: u64,
}

/// Verifies `file` end to end.
pub fn verify(file: &Path) -> Result<Verified, BackupError> {
    let (seen, manifest) = read_entries(file, |_, _| Ok(()))?;
    let problems = check(&seen, &manifest);
    if !problems.is_empty() {
        return Err(BackupError::Corrupt {
            file: file.display().to_string(),
            problems,
        });
    }
    let file_bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    Ok(Verified {
        manifest,
        file_bytes,
    })
}
