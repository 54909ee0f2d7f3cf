//! Putting a finished file in place: a reader sees the old name or the whole new file,
//! never a half-written one, and the rename survives a power cut.

use std::fs::File;
use std::path::Path;

/// Renames the complete `tmp` over `out`, syncs their folder; returns `out`'s size.
pub fn publish(tmp: &Path, out: &Path) -> std::io::Result<u64> {
    std::fs::rename(tmp, out)?;
    // The rename is durable only once the folder's entry is on disk.
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(std::fs::metadata(out).map(|m| m.len()).unwrap_or(0))
}
