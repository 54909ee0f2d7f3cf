//! Free space under DATA_DIR and the backup folder.

use super::Finding;
use crate::plan::Plan;
use std::path::{Path, PathBuf};

/// Thresholds: below `error_*` is a problem, below `warn_*` a warning.
#[derive(Debug, Clone)]
pub struct DiskLimits {
    pub error_bytes: u64,
    pub error_percent: f64,
    pub warn_bytes: u64,
    pub warn_percent: f64,
}

impl Default for DiskLimits {
    fn default() -> Self {
        DiskLimits {
            error_bytes: 1 << 30,
            error_percent: 2.0,
            warn_bytes: 5 << 30,
            warn_percent: 10.0,
        }
    }
}

/// DATA_DIR and the backup folder (`[backup].dir`), each measured on the nearest
/// folder that exists.
pub fn check_disk(plan: &Plan, backups: &Path, limits: &DiskLimits) -> Vec<Finding> {
    let data = plan.stack.data_dir.clone();
    let backups = backups.to_path_buf();
    let mut out = Vec::new();
    let mut seen_fs = Vec::new();
    for (what, dir) in [("DATA_DIR", data), ("the backup folder", backups)] {
        let Some(at) = existing(&dir) else { continue };
        let Ok(st) = nix::sys::statvfs::statvfs(&at) else {
            continue;
        };
        // The backup folder usually sits on DATA_DIR's filesystem: report it once.
        if seen_fs.contains(&st.filesystem_id()) {
            continue;
        }
        seen_fs.push(st.filesystem_id());
        let frag = st.fragment_size();
        let free = st.blocks_available() * frag;
        let total = st.blocks() * frag;
        let pct = if total == 0 {
            100.0
        } else {
            free as f64 * 100.0 / total as f64
        };
        let msg = format!(
            "{what} {} has {} free ({pct:.1}% of {})",
            dir.display(),
            human(free),
            human(total)
        );
        let fix = format!("free space on the filesystem of {} (old backups, logs, podman images: `podman image prune`) or grow it", at.display());
        if free < limits.error_bytes || pct < limits.error_percent {
            out.push(Finding::error("disk", msg, fix));
        } else if free < limits.warn_bytes || pct < limits.warn_percent {
            out.push(Finding::warning("disk", msg, fix));
        }
    }
    out
}

fn existing(p: &Path) -> Option<PathBuf> {
    p.ancestors().find(|a| a.exists()).map(Path::to_path_buf)
}

/// Bytes as `1.5 GiB`.
fn human(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", units[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human(8 << 20), "8.0 MiB");
        assert_eq!(human(1536 << 20), "1.5 GiB");
    }
}
