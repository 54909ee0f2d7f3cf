//! The daemon's scheduled-backup step (`backup::scheduled::run_once`) on a real config:
//! outcomes in the status state and the metrics, pruning to `keep` after verification,
//! and a failure that shows instead of a missing file.

use prometheus_stack::backup::scheduled::{run_once, BackupMetrics, BackupState};
use prometheus_stack::metrics::Metrics;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn config(dir: &Path, backup_dir: &Path) -> std::path::PathBuf {
    let p = dir.join("stack.toml");
    std::fs::write(
        &p,
        format!(
            "[stack]\ndata_dir = \"{}/data\"\n[backup]\ndir = \"{}\"\nkeep = 2\nschedule = \"hourly\"\n",
            dir.display(),
            backup_dir.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("data/secrets")).unwrap();
    std::fs::write(dir.join("data/secrets/some-secret"), "s3cr3t").unwrap();
    p
}

#[test]
fn scheduled_runs_record_prune_after_verify_and_show_failures() {
    crate::support::rt().block_on(async {
        let t = tempfile::tempdir().unwrap();
        let bdir = t.path().join("backups");
        let cfg = config(t.path(), &bdir);
        let st = BackupState::default();
        let metrics = Metrics::new();
        metrics.add(Arc::new(BackupMetrics(st.clone())));
        for _ in 0..3 {
            run_once(&st, Some(cfg.clone()), &bdir, 2).await;
            let s = st.snapshot();
            assert_eq!(s.last_result.as_deref(), Some("ok"), "{:?}", s.last_error);
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        let listed = prometheus_stack::backup::list(&bdir).unwrap();
        assert_eq!(listed.len(), 2, "pruned to keep = 2: {listed:?}");
        let s = st.snapshot();
        assert_eq!(s.last_file.as_deref(), Some(listed[0].path.as_path()));
        let v = prometheus_stack::backup::verify(&listed[0].path).unwrap();
        assert!(v
            .manifest
            .entries
            .iter()
            .any(|e| e.path == "data/secrets/some-secret"));
        let text = metrics.render();
        assert!(
            text.contains(&format!(
                "prometheus_stack_backup_last_success_timestamp_seconds {}",
                s.last_success_unix.unwrap()
            )),
            "{text}"
        );
        assert!(text.contains(&format!(
            "prometheus_stack_backup_last_size_bytes {}",
            s.last_size_bytes.unwrap()
        )));
        assert!(
            text.contains("prometheus_stack_backup_last_failed 0"),
            "{text}"
        );

        // A folder that cannot be made: failed in the state and the metrics, the good
        // backups untouched.
        let blocker = t.path().join("not-a-dir");
        std::fs::write(&blocker, "x").unwrap();
        run_once(&st, Some(cfg.clone()), &blocker.join("sub"), 2).await;
        let s = st.snapshot();
        assert_eq!(s.last_result.as_deref(), Some("failed"));
        assert!(
            s.last_error.as_deref().unwrap().contains("not-a-dir"),
            "{:?}",
            s.last_error
        );
        assert!(s.last_success_unix.is_some());
        assert!(metrics
            .render()
            .contains("prometheus_stack_backup_last_failed 1"));
        assert_eq!(prometheus_stack::backup::list(&bdir).unwrap().len(), 2);
    });
}
