//! GPU watch: NVML readings per card and per unit, and the per-unit memory policies.
//!
//! `GpuMonitor::start` spawns the poller thread (NVML never runs on the async runtime),
//! hands out a watch of `GpuSnapshot` and a start gate for `gpu.min_free`; `connect` gives
//! it the units (for attribution) and runs the `gpu.max_used` watchdog as a tokio task
//! that restarts units through a `Restarter`. Wiring in the daemon:
//!
//! ```ignore
//! let gpu = GpuMonitor::start(&plan);
//! let handle = Supervisor::start(plan.clone(), secrets, vec![gpu.gate()]);
//! gpu.connect_supervisor(&handle);
//! ```

pub mod attribution;
pub mod nvml;
pub mod policy;
mod poller;
pub mod snapshot;
mod supervisor_link;

pub use attribution::{UnitPids, UnitProc};
pub use nvml::{GpuSource, NvmlSource, SourceReading};
pub use policy::Gate;
pub use poller::OpenSource;
pub use snapshot::{human_bytes, Availability, GpuProcess, GpuReading, GpuSnapshot, UnitGpu};

use crate::config::model::GpuEnabled;
use crate::plan::{BoxFuture, GpuPlan, GpuPolicy, Plan, Unit};
use policy::{MaxUsedWatch, MinFreeGate};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::watch;

/// Why GPU readings are unavailable; the text is the operator's one line.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("{0} (is the NVIDIA driver installed?)")]
    Library(String),
    #[error("{0}")]
    Driver(String),
    #[error("no NVIDIA GPU found")]
    NoGpu,
}

/// Restarts a unit on the watchdog's order (the supervisor handle in the daemon).
pub trait Restarter: Send + Sync + 'static {
    /// Restarts `unit`, giving `reason` for status and logs.
    fn restart(&self, unit: &str, reason: &str) -> BoxFuture<Result<(), String>>;
}

/// State the poller, the gate and the watchdog share.
#[derive(Default)]
pub(crate) struct Shared {
    policies: Mutex<HashMap<String, GpuPolicy>>,
    restarts: Mutex<BTreeMap<String, u64>>,
    /// Set by `connect`: until then no process is attributed.
    units: Mutex<Option<Arc<dyn UnitPids>>>,
    /// The plan in force, when connected to a supervisor (reloads change policies).
    live_policies: Mutex<Option<PolicySource>>,
}

/// Gives the units' GPU policies of the plan in force.
pub type PolicySource = Arc<dyn Fn() -> HashMap<String, GpuPolicy> + Send + Sync>;

impl Shared {
    fn unit_pids(&self) -> Vec<UnitProc> {
        let units = self.units.lock().unwrap_or_else(|e| e.into_inner()).clone();
        units.map(|u| u.unit_pids()).unwrap_or_default()
    }
    fn policies(&self) -> HashMap<String, GpuPolicy> {
        self.policies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    fn restart_counts(&self) -> BTreeMap<String, u64> {
        self.restarts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    fn count_restart(&self, unit: &str) -> u64 {
        let mut m = self.restarts.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(unit.to_string()).or_insert(0);
        *n += 1;
        *n
    }
}

pub(crate) fn policies_of(plan: &Plan) -> HashMap<String, GpuPolicy> {
    plan.units
        .iter()
        .filter_map(|u| u.gpu.clone().map(|p| (u.name.clone(), p)))
        .collect()
}

/// The running GPU watch. Dropping it stops the poller thread and the watchdog.
pub struct GpuMonitor {
    tx: Arc<watch::Sender<GpuSnapshot>>,
    shared: Arc<Shared>,
    gate: Arc<GpuGate>,
    // Dropping the sender ends the poller thread's wait.
    _stop: Option<std::sync::mpsc::Sender<()>>,
    watchdog: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for GpuMonitor {
    fn drop(&mut self) {
        if let Some(w) = self
            .watchdog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            w.abort();
        }
    }
}

impl GpuMonitor {
    /// Starts the poller with NVML from the system (`libnvidia-ml.so.1`); `[gpu].enabled =
    /// "off"` starts nothing. Hand `gate()` to the supervisor, then call `connect`.
    pub fn start(plan: &Plan) -> Self {
        Self::start_with(
            &plan.gpu,
            policies_of(plan),
            Box::new(|| NvmlSource::open().map(|s| Box::new(s) as Box<dyn GpuSource>)),
        )
    }

    /// Starts the poller on any GPU source (tests: NVML loaded from a given path).
    pub fn start_with(
        gpu: &GpuPlan,
        policies: HashMap<String, GpuPolicy>,
        open: OpenSource,
    ) -> Self {
        let shared = Arc::new(Shared::default());
        *shared.policies.lock().unwrap_or_else(|e| e.into_inner()) = policies;
        let initial = if gpu.enabled == GpuEnabled::Off {
            GpuSnapshot::with_availability(Availability::Disabled)
        } else {
            GpuSnapshot::default()
        };
        let (tx, rx) = watch::channel(initial);
        let tx = Arc::new(tx);
        let gate = Arc::new(GpuGate {
            rx: rx.clone(),
            waits: Mutex::new(MinFreeGate::default()),
        });
        if gpu.enabled == GpuEnabled::Off {
            tracing::info!("GPU monitoring off ([gpu].enabled = \"off\")");
            return GpuMonitor {
                tx,
                shared,
                gate,
                _stop: None,
                watchdog: Mutex::new(None),
            };
        }
        let (stop_tx, stop_rx) = std::sync::mpsc::channel();
        let poller = poller::Poller {
            interval: gpu.interval,
            alert_percent: gpu.alert_used_percent,
            enabled: gpu.enabled,
            shared: shared.clone(),
            tx: tx.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name("gpu-poller".into())
            .spawn(move || poller.run(open, stop_rx));
        if let Err(e) = spawned {
            tx.send_replace(GpuSnapshot::with_availability(Availability::Unavailable(
                format!("cannot start the poller thread: {e}"),
            )));
        }
        GpuMonitor {
            tx,
            shared,
            gate,
            _stop: Some(stop_tx),
            watchdog: Mutex::new(None),
        }
    }

    /// Gives the monitor the units to attribute processes to and the way to restart them,
    /// and starts the `max_used` watchdog. Must run inside a tokio runtime.
    pub fn connect(&self, units: Arc<dyn UnitPids>, restarter: Arc<dyn Restarter>) {
        *self.shared.units.lock().unwrap_or_else(|e| e.into_inner()) = Some(units);
        if self.tx.borrow().availability == Availability::Disabled {
            return;
        }
        let task = tokio::spawn(run_watchdog(
            self.tx.subscribe(),
            self.tx.clone(),
            self.shared.clone(),
            restarter,
        ));
        if let Some(old) = self
            .watchdog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(task)
        {
            old.abort();
        }
    }

    /// Every new reading.
    pub fn subscribe(&self) -> watch::Receiver<GpuSnapshot> {
        self.tx.subscribe()
    }

    /// The latest reading.
    pub fn snapshot(&self) -> GpuSnapshot {
        self.tx.borrow().clone()
    }

    /// The `gpu.min_free` start gate for the supervisor.
    pub fn gate(&self) -> Arc<dyn crate::supervisor::StartGate> {
        self.gate.clone()
    }

    /// The gate as its own type (tests call `check` on it directly).
    pub fn gpu_gate(&self) -> Arc<GpuGate> {
        self.gate.clone()
    }

    /// Takes the units' GPU policies from a new plan (reload without a supervisor link).
    pub fn set_policies(&self, plan: &Plan) {
        *self
            .shared
            .policies
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = policies_of(plan);
    }

    /// Reads policies from `source` on every use from now on (the supervisor's plan in force).
    pub fn follow_policies(&self, source: PolicySource) {
        *self
            .shared
            .live_policies
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(source);
    }
}

/// Holds units with `gpu.min_free` pending until a GPU has that much free.
pub struct GpuGate {
    rx: watch::Receiver<GpuSnapshot>,
    waits: Mutex<MinFreeGate>,
}

impl GpuGate {
    /// Decides whether `unit` may start now (polled about once a second while pending).
    pub fn check(&self, unit: &Unit) -> Gate {
        let snap = self.rx.borrow().clone();
        self.waits.lock().unwrap_or_else(|e| e.into_inner()).decide(
            &snap,
            &unit.name,
            unit.gpu.as_ref(),
            Instant::now(),
        )
    }
}

async fn run_watchdog(
    mut rx: watch::Receiver<GpuSnapshot>,
    tx: Arc<watch::Sender<GpuSnapshot>>,
    shared: Arc<Shared>,
    restarter: Arc<dyn Restarter>,
) {
    let mut watch = MaxUsedWatch::default();
    while rx.changed().await.is_ok() {
        let snap = rx.borrow_and_update().clone();
        let orders = watch.observe(&snap, &shared.policies(), Instant::now());
        for o in orders {
            tracing::warn!("unit {}: restarting: {}", o.unit, o.reason);
            if let Err(e) = restarter.restart(&o.unit, &o.reason).await {
                tracing::warn!("unit {}: GPU watchdog restart failed: {e}", o.unit);
            }
            let n = shared.count_restart(&o.unit);
            tx.send_modify(|s| {
                if let Some(u) = s.units.iter_mut().find(|u| u.unit == o.unit) {
                    u.policy_restarts = n;
                }
            });
            // send_modify marks the value changed; skip our own edit.
            rx.borrow_and_update();
        }
    }
}
