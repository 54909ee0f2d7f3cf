//! Free space: DATA_DIR on a nearly full filesystem (an 8 MiB tmpfs) is a problem.

use crate::support::objects::plan;
use prometheus_stack::doctor::{check_disk, DiskLimits, Finding};
use std::process::Command;

/// Unmounts the tmpfs even when an assertion fails.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn data_dir_on_a_small_filesystem_is_a_problem_with_the_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&data)
        .status()
        .expect("mount");
    assert!(st.success(), "mount -t tmpfs needs root (CI runs as root)");
    let _m = Mounted(data.clone());
    let p = plan(&format!("[stack]\ndata_dir = {:?}\n", data));
    let fix = format!("free space on the filesystem of {} (old backups, logs, podman images: `podman image prune`) or grow it", data.display());
    assert_eq!(
        check_disk(&p, &data.join("backups"), &DiskLimits::default()),
        vec![Finding::error(
            "disk",
            format!(
                "DATA_DIR {} has 8.0 MiB free (100.0% of 8.0 MiB)",
                data.display()
            ),
            fix.clone(),
        )]
    );
    // Same filesystem, lower thresholds: fine; and a warning between the two levels.
    let small = DiskLimits {
        error_bytes: 1 << 20,
        error_percent: 1.0,
        warn_bytes: 1 << 20,
        warn_percent: 1.0,
    };
    assert_eq!(check_disk(&p, &data.join("backups"), &small), vec![]);
    let warn = DiskLimits {
        warn_bytes: 16 << 20,
        ..small
    };
    assert_eq!(
        check_disk(&p, &data.join("backups"), &warn)[0].severity,
        prometheus_stack::doctor::Severity::Warning
    );
}
