//! Per-unit resource usage, as `docker stats` shows it: CPU % and resident memory of
//! each unit's whole process tree (for podman units, the container's tree under its
//! conmon), plus CPU seconds since the daemon started. Sampled every
//! [`SAMPLE_EVERY`] on the blocking pool (reading /proc is blocking work); read by
//! `status` (through the control socket) and `/metrics`.

mod sample;

pub use sample::{Root, Sampler};

use crate::supervisor::{Handle, Snapshot, UnitState};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often the process trees are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);

/// One unit's usage at the last sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitUsage {
    /// CPU time over wall time since the previous sample (100 = one core; None on the
    /// first sample and while the unit does not run).
    pub cpu_percent: Option<f64>,
    /// CPU seconds the unit's processes used since the daemon started.
    pub cpu_seconds: f64,
    /// Resident memory of the unit's process tree (None while it does not run).
    pub memory_bytes: Option<u64>,
}

/// Every unit that ran since the daemon started, by name.
pub type UsageTable = BTreeMap<String, UnitUsage>;

/// The latest samples (cheap to clone).
#[derive(Clone)]
pub struct UsageMonitor {
    rx: watch::Receiver<Arc<UsageTable>>,
}

impl UsageMonitor {
    /// Samples `handle`'s units every [`SAMPLE_EVERY`] until `stop`, on a task of `tracker`.
    pub fn start(handle: Handle, stop: CancellationToken, tracker: &TaskTracker) -> Self {
        let (tx, rx) = watch::channel(Arc::new(UsageTable::new()));
        tracker.spawn(sample_loop(handle, tx, stop));
        UsageMonitor { rx }
    }

    /// The latest table.
    pub fn table(&self) -> Arc<UsageTable> {
        self.rx.borrow().clone()
    }
}

async fn sample_loop(handle: Handle, tx: watch::Sender<Arc<UsageTable>>, stop: CancellationToken) {
    let sampler = Arc::new(Mutex::new(Sampler::new()));
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let roots = roots(&handle.snapshot());
        let s = sampler.clone();
        let sampled = tokio::task::spawn_blocking(move || {
            s.lock().unwrap_or_else(|e| e.into_inner()).sample(&roots)
        })
        .await;
        match sampled {
            Ok(table) => {
                tx.send_replace(Arc::new(table));
            }
            Err(e) => {
                tracing::error!("resource usage sampling stopped: {e}");
                return;
            }
        }
    }
}

/// The units that have processes now.
pub fn roots(snap: &Snapshot) -> Vec<Root> {
    snap.units
        .iter()
        .filter(|u| {
            matches!(
                u.state,
                UnitState::Starting | UnitState::Running | UnitState::Healthy | UnitState::Stopping
            )
        })
        .filter(|u| u.pid.is_some() || u.container.is_some())
        .map(|u| Root {
            unit: u.name.clone(),
            pid: u.pid,
            container: u.container.clone(),
        })
        .collect()
}
