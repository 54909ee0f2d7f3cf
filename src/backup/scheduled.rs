//! Scheduled backups inside the daemon: one task that sleeps until `[backup].schedule` is
//! due, takes a backup on a blocking thread (one at a time: the task is sequential and
//! `create` locks the folder), prunes to `keep` only after the new one verified, and
//! records the outcome for `status` and `/metrics`. A failure is an error in both and in
//! the log, never a silently missing file.

use super::schedule::{self, Schedule};
use super::{create, default_name, prune, Sources};
use crate::plan::Plan;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What `status` shows about scheduled backups.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BackupStatus {
    pub schedule: String,
    pub dir: PathBuf,
    pub keep: u32,
    pub running: bool,
    pub next_unix: Option<u64>,
    pub last_attempt_unix: Option<u64>,
    /// "ok" or "failed".
    pub last_result: Option<String>,
    pub last_error: Option<String>,
    pub last_file: Option<PathBuf>,
    pub last_success_unix: Option<u64>,
    pub last_size_bytes: Option<u64>,
    pub last_duration_seconds: Option<f64>,
}

/// Shared view of the scheduler's state.
#[derive(Debug, Clone, Default)]
pub struct BackupState(Arc<Mutex<BackupStatus>>);

impl BackupState {
    /// A copy of the current state.
    pub fn snapshot(&self) -> BackupStatus {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    fn update(&self, f: impl FnOnce(&mut BackupStatus)) {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Starts the scheduler for the plan's config (`[backup]` is read from its file).
pub fn start(plan: &Plan, stop: CancellationToken, tracker: &TaskTracker) -> BackupState {
    let state = BackupState::default();
    let loaded = match &plan.source.path {
        Some(p) => crate::config::load_file(p),
        None => crate::config::load_str(
            "<embedded default>",
            None,
            crate::config::DEFAULT_CONFIG.to_string(),
        ),
    };
    let (cfg, src) = match loaded {
        Ok(x) => x,
        Err(e) => {
            tracing::error!("scheduled backups off: {e}");
            return state;
        }
    };
    let dir = super::backup_dir(&cfg, &src);
    let sched = schedule::parse(&cfg.backup.schedule).unwrap_or(Schedule::Off);
    let keep = cfg.backup.keep.max(1);
    state.update(|s| {
        s.schedule = cfg.backup.schedule.clone();
        s.dir = dir.clone();
        s.keep = keep;
    });
    if sched == Schedule::Off {
        return state;
    }
    remove_partials(&dir);
    let st = state.clone();
    tracker.spawn(async move {
        loop {
            let Some(next) = schedule::next_after(sched, SystemTime::now()) else {
                return;
            };
            st.update(|s| s.next_unix = Some(unix(next)));
            let wait = next.duration_since(SystemTime::now()).unwrap_or_default();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => return,
            }
            run_once(&st, src.path.clone(), &dir, keep).await;
        }
    });
    state
}

/// Temp files of backups a previous daemon did not finish.
fn remove_partials(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.contains(".partial-") {
            tracing::warn!(
                "removing {} (a backup that did not finish)",
                e.path().display()
            );
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Takes one backup and records the outcome.
pub async fn run_once(st: &BackupState, config: Option<PathBuf>, dir: &Path, keep: u32) {
    let started = SystemTime::now();
    let t0 = Instant::now();
    st.update(|s| {
        s.running = true;
        s.last_attempt_unix = Some(unix(started));
    });
    let out = dir.join(default_name(unix(started)));
    let rt = tokio::runtime::Handle::current();
    let (o, d) = (out.clone(), dir.to_path_buf());
    let result = tokio::task::spawn_blocking(move || {
        let sources = match &config {
            Some(p) => Sources::from_file(p)?,
            None => {
                let (cfg, src) = crate::config::load_str(
                    "<embedded default>",
                    None,
                    crate::config::DEFAULT_CONFIG.to_string(),
                )
                .map_err(|e| super::BackupError::Config(e.to_string()))?;
                Sources::resolve(&cfg, &src)?
            }
        };
        let c = create(&sources, &o, &rt)?;
        // Only now that the new one verified.
        let gone = prune(&d, keep as usize)?;
        Ok::<_, super::BackupError>((c, gone))
    })
    .await;
    let secs = t0.elapsed().as_secs_f64();
    let result = match result {
        Ok(Ok(x)) => Ok(x),
        Ok(Err(e)) => Err(crate::error_chain::error_chain(&e)),
        Err(e) => Err(format!("the backup task ended: {e}")),
    };
    match result {
        Ok((c, gone)) => {
            tracing::info!(
                "scheduled backup {} ({} bytes, {} entries) verified in {secs:.1} s; pruned {}",
                c.path.display(),
                c.bytes,
                c.manifest.entries.len(),
                gone.len()
            );
            st.update(|s| {
                s.running = false;
                s.last_result = Some("ok".into());
                s.last_error = None;
                s.last_file = Some(c.path.clone());
                s.last_success_unix = Some(unix(started));
                s.last_size_bytes = Some(c.bytes);
                s.last_duration_seconds = Some(secs);
            });
        }
        Err(e) => {
            tracing::error!("scheduled backup to {} failed: {e}", out.display());
            st.update(|s| {
                s.running = false;
                s.last_result = Some("failed".into());
                s.last_error = Some(e);
                s.last_duration_seconds = Some(secs);
            });
        }
    }
}

/// `prometheus_stack_backup_*` series.
pub struct BackupMetrics(pub BackupState);

impl crate::metrics::MetricSource for BackupMetrics {
    fn collect(&self, registry: &mut prometheus_client::registry::Registry) {
        use prometheus_client::metrics::gauge::Gauge;
        use std::sync::atomic::AtomicU64;
        let s = self.0.snapshot();
        let gauge = |v: f64| {
            let g = Gauge::<f64, AtomicU64>::default();
            g.set(v);
            g
        };
        if let Some(t) = s.last_success_unix {
            registry.register(
                "prometheus_stack_backup_last_success_timestamp_seconds",
                "When the last verified backup started (Unix time)",
                gauge(t as f64),
            );
        }
        if let Some(b) = s.last_size_bytes {
            registry.register(
                "prometheus_stack_backup_last_size_bytes",
                "Size on disk of the last verified backup",
                gauge(b as f64),
            );
        }
        registry.register(
            "prometheus_stack_backup_last_failed",
            "1 when the last scheduled backup failed (see status), else 0",
            gauge(if s.last_result.as_deref() == Some("failed") {
                1.0
            } else {
                0.0
            }),
        );
    }
}
