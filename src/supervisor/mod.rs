//! The supervisor: one task per unit (`unit/`) running its state machine, a shared
//! status table published as a [`Snapshot`] on a watch channel, and a [`Handle`] through
//! which the control API, signals and other pieces of the daemon drive it.
//!
//! Where things are decided: what a command does to a unit is the table in
//! `unit/transition.rs`; what a run's end leads to (backoff, crash loop, completed) is
//! `unit/exit.rs`; restart delays are `backoff`; what a reload restarts is `reload`. The
//! `warden` joins every unit task, so a panicking one shows as `failed`.
//!
//! Generic: it knows units, dependencies, health checks and policies, never components.

pub mod backoff;
pub mod gate;
pub mod health;
pub mod reload;
pub mod state;
mod unit;
mod warden;

/// The log sink lives in its own leaf module; this path stays for existing callers.
pub use crate::logsink as logs;
pub use crate::logsink::LogSink;
pub use gate::{Gate, StartGate};
pub use reload::{ensure_secrets, reload_from_source, ReloadError, ReloadReport, SecretsError};
pub use state::{Snapshot, UnitState, UnitStatus};

use crate::plan::{Condition, Plan, Unit};
use crate::secrets::SecretStore;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// Errors of the handle's commands.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("no unit named {0:?} (see `prometheus-stack status`)")]
    UnknownUnit(String),
    #[error("the supervisor is shutting down")]
    ShuttingDown,
}

/// A command to one unit's task.
pub(crate) enum Cmd {
    /// Start (also clears `failed`).
    Start,
    /// Stop and stay stopped; acknowledged once the process is gone.
    Stop(oneshot::Sender<()>),
    /// Stop, then start again (counted in restarts); acknowledged once stopped.
    Restart {
        reason: String,
        done: Option<oneshot::Sender<()>>,
    },
    /// New definition from a reload (`None`: unchanged, but a dependency changed).
    Reload {
        unit: Option<Arc<Unit>>,
        reason: String,
        done: oneshot::Sender<()>,
    },
    /// Stop and end the task (unit removed by a reload).
    Remove(oneshot::Sender<()>),
}

pub(crate) struct Shared {
    /// The plan in force; a watch so the proxy and GPU poller follow reloads.
    pub(crate) plan: watch::Sender<Arc<Plan>>,
    statuses: Mutex<Vec<UnitStatus>>,
    snap_tx: watch::Sender<Arc<Snapshot>>,
    started_at: f64,
    ready: std::sync::atomic::AtomicBool,
    logs: Mutex<HashMap<String, LogSink>>,
    units: Mutex<HashMap<String, mpsc::UnboundedSender<Cmd>>>,
    pub(crate) secrets: SecretStore,
    pub(crate) gates: Vec<Arc<dyn StartGate>>,
    shutting_down: std::sync::atomic::AtomicBool,
    reload_lock: tokio::sync::Mutex<()>,
    /// How units' children are started (a fake in unit tests).
    launcher: unit::Launcher,
    /// Hands unit tasks to the warden, which joins them (see `warden`).
    warden: mpsc::UnboundedSender<warden::UnitTask>,
}

impl Shared {
    pub(crate) fn plan(&self) -> Arc<Plan> {
        self.plan.borrow().clone()
    }

    /// Changes one unit's status and publishes a new snapshot when anything changed.
    pub(crate) fn update(&self, name: &str, f: impl FnOnce(&mut UnitStatus)) {
        let mut st = self.statuses.lock().unwrap_or_else(|e| e.into_inner());
        let Some(s) = st.iter_mut().find(|s| s.name == name) else {
            return;
        };
        let before = (
            s.state,
            s.pid,
            s.restarts,
            s.health.clone(),
            s.reason.clone(),
        );
        let old_state = s.state;
        f(s);
        if s.state != old_state {
            s.since = state::now();
        }
        if before
            == (
                s.state,
                s.pid,
                s.restarts,
                s.health.clone(),
                s.reason.clone(),
            )
        {
            return;
        }
        self.publish(&st);
    }

    fn publish(&self, st: &[UnitStatus]) {
        use std::sync::atomic::Ordering;
        if !self.ready.load(Ordering::Relaxed) && startup_over(&self.plan(), st) {
            self.ready.store(true, Ordering::Relaxed);
        }
        self.snap_tx.send_replace(Arc::new(Snapshot {
            units: st.to_vec(),
            started_at: self.started_at,
            ready: self.ready.load(Ordering::Relaxed),
        }));
    }

    pub(crate) fn status(&self, name: &str) -> Option<UnitStatus> {
        let st = self.statuses.lock().unwrap_or_else(|e| e.into_inner());
        st.iter().find(|s| s.name == name).cloned()
    }

    pub(crate) fn log_sink(&self, name: &str) -> LogSink {
        self.logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_insert_with(|| LogSink::new(name))
            .clone()
    }
}

/// Whether the dependency condition holds for a unit in `state`.
pub(crate) fn condition_holds(cond: Condition, state: UnitState) -> bool {
    match cond {
        Condition::Started => matches!(
            state,
            UnitState::Running | UnitState::Healthy | UnitState::Completed
        ),
        Condition::Healthy => state == UnitState::Healthy,
        Condition::Completed => state == UnitState::Completed,
    }
}

/// Startup is over when every unit reached its start condition, gave up, was stopped, or
/// waits on a unit that gave up.
fn startup_over(plan: &Plan, st: &[UnitStatus]) -> bool {
    let mut blocked: BTreeSet<&str> = BTreeSet::new();
    for u in &plan.units {
        let Some(s) = st.iter().find(|s| s.name == u.name) else {
            continue;
        };
        let settled = match s.state {
            UnitState::Healthy | UnitState::Completed | UnitState::Failed | UnitState::Stopped => {
                true
            }
            UnitState::Running => u.health.is_none(),
            UnitState::Pending => u.depends_on.iter().any(|d| {
                blocked.contains(d.unit.as_str())
                    || st
                        .iter()
                        .any(|x| x.name == d.unit && x.state == UnitState::Failed)
            }),
            _ => false,
        };
        if !settled {
            return false;
        }
        if s.state == UnitState::Pending || s.state == UnitState::Failed {
            blocked.insert(&u.name);
        }
    }
    true
}

/// The supervisor's entry point.
pub struct Supervisor;

impl Supervisor {
    /// Starts one task per unit of `plan` (on the current tokio runtime) and returns the handle.
    pub fn start(plan: Arc<Plan>, secrets: SecretStore, gates: Vec<Arc<dyn StartGate>>) -> Handle {
        Self::start_with(plan, secrets, gates, unit::Launcher::Runtime)
    }

    pub(crate) fn start_with(
        plan: Arc<Plan>,
        secrets: SecretStore,
        gates: Vec<Arc<dyn StartGate>>,
        launcher: unit::Launcher,
    ) -> Handle {
        let statuses: Vec<UnitStatus> = plan
            .units
            .iter()
            .map(|u| UnitStatus::new(&u.name, u.kind))
            .collect();
        let started_at = state::now();
        let (snap_tx, _) = watch::channel(Arc::new(Snapshot {
            units: statuses.clone(),
            started_at,
            ready: plan.units.is_empty(),
        }));
        let (warden, tasks) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            plan: watch::channel(plan.clone()).0,
            statuses: Mutex::new(statuses),
            snap_tx,
            started_at,
            ready: std::sync::atomic::AtomicBool::new(plan.units.is_empty()),
            logs: Mutex::new(HashMap::new()),
            units: Mutex::new(HashMap::new()),
            secrets,
            gates,
            shutting_down: std::sync::atomic::AtomicBool::new(false),
            reload_lock: tokio::sync::Mutex::new(()),
            launcher,
            warden,
        });
        tokio::spawn(warden::run(shared.clone(), tasks));
        for u in &plan.units {
            spawn_unit(&shared, Arc::new(u.clone()));
        }
        Handle { shared }
    }
}

/// Starts a unit's task (wanted up).
fn spawn_unit(shared: &Arc<Shared>, unit: Arc<Unit>) {
    spawn_machine(shared, unit, unit::Step::Pending);
}

/// Starts a unit's machine at `first` and gives its task to the warden.
fn spawn_machine(shared: &Arc<Shared>, unit: Arc<Unit>, first: unit::Step) {
    let (tx, rx) = mpsc::unbounded_channel();
    shared
        .units
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(unit.name.clone(), tx);
    let name = unit.name.clone();
    let task = Box::pin(unit::run(shared.clone(), unit, rx, first));
    // The warden lives as long as `shared`, which we hold.
    let _ = shared.warden.send(warden::UnitTask { name, task });
}

/// Drives the supervisor; cheap to clone.
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl Handle {
    fn send(&self, name: &str, cmd: Cmd) -> Result<(), SupervisorError> {
        if self
            .shared
            .shutting_down
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(SupervisorError::ShuttingDown);
        }
        let units = self.shared.units.lock().unwrap_or_else(|e| e.into_inner());
        let tx = units
            .get(name)
            .ok_or_else(|| SupervisorError::UnknownUnit(name.to_string()))?;
        tx.send(cmd)
            .map_err(|_| SupervisorError::UnknownUnit(name.to_string()))
    }

    /// Starts a unit (also after `failed` or `completed`); returns once the request is queued.
    pub fn start(&self, name: &str) -> Result<(), SupervisorError> {
        self.send(name, Cmd::Start)
    }

    /// Stops a unit and waits until its processes are gone.
    pub async fn stop(&self, name: &str) -> Result<(), SupervisorError> {
        let (tx, rx) = oneshot::channel();
        self.send(name, Cmd::Stop(tx))?;
        let _ = rx.await;
        Ok(())
    }

    /// Restarts a unit by hand; waits until the old process is gone.
    pub async fn restart(&self, name: &str) -> Result<(), SupervisorError> {
        self.restart_with_reason(name, "restarted by hand").await
    }

    /// Restarts a unit for a policy (GPU memory, rotated secret…); counted in restarts and
    /// shown as the reason. Waits until the old process is gone.
    pub async fn restart_with_reason(
        &self,
        name: &str,
        reason: impl Into<String>,
    ) -> Result<(), SupervisorError> {
        let (tx, rx) = oneshot::channel();
        self.send(
            name,
            Cmd::Restart {
                reason: reason.into(),
                done: Some(tx),
            },
        )?;
        let _ = rx.await;
        Ok(())
    }

    /// Applies a new plan: restarts only the units whose definition changed and their
    /// dependents, starts new units, stops removed ones.
    pub async fn reload(&self, plan: Arc<Plan>) -> Result<ReloadReport, ReloadError> {
        reload::apply(self, plan).await
    }

    /// Live snapshots (a new value on every change).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.shared.snap_tx.subscribe()
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.snap_tx.borrow().clone()
    }

    /// The plan in force.
    pub fn plan(&self) -> Arc<Plan> {
        self.shared.plan()
    }

    /// Every plan put in force, starting with the current one (reloads by signal or API).
    pub fn watch_plan(&self) -> watch::Receiver<Arc<Plan>> {
        self.shared.plan.subscribe()
    }

    /// The secrets store units are started with.
    pub fn secrets(&self) -> &SecretStore {
        &self.shared.secrets
    }

    /// The last `n` lines of a unit's output.
    pub fn logs(&self, name: &str, n: usize) -> Result<Vec<Arc<str>>, SupervisorError> {
        self.known(name)?;
        Ok(self.shared.log_sink(name).tail(n))
    }

    /// New lines of a unit's output as they come.
    pub fn follow(&self, name: &str) -> Result<broadcast::Receiver<Arc<str>>, SupervisorError> {
        self.known(name)?;
        Ok(self.shared.log_sink(name).follow())
    }

    /// The unit's log (other pieces may write lines for a unit, e.g. a GPU policy).
    pub fn log_sink(&self, name: &str) -> Result<LogSink, SupervisorError> {
        self.known(name)?;
        Ok(self.shared.log_sink(name))
    }

    fn known(&self, name: &str) -> Result<(), SupervisorError> {
        if self.shared.status(name).is_some() {
            Ok(())
        } else {
            Err(SupervisorError::UnknownUnit(name.to_string()))
        }
    }

    /// Stops every unit, dependents before their dependencies, and waits for all of them.
    /// Later commands are refused.
    pub async fn shutdown(&self) {
        let _reload = self.shared.reload_lock.lock().await;
        self.shared
            .shutting_down
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let plan = self.plan();
        let names: Vec<String> = plan.units.iter().map(|u| u.name.clone()).collect();
        stop_in_order(self, &plan, &names).await;
    }

    fn sender(&self, name: &str) -> Option<mpsc::UnboundedSender<Cmd>> {
        self.shared
            .units
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }
}

/// Stops `names` concurrently, each only after every unit of `plan` depending on it stopped.
pub(crate) async fn stop_in_order(handle: &Handle, plan: &Plan, names: &[String]) {
    let mut done: HashMap<String, watch::Receiver<bool>> = HashMap::new();
    let mut tasks = Vec::new();
    for u in plan.units.iter().rev() {
        if !names.contains(&u.name) {
            continue;
        }
        let (tx, rx) = watch::channel(false);
        let waits: Vec<watch::Receiver<bool>> = plan
            .units
            .iter()
            .filter(|d| d.depends_on.iter().any(|x| x.unit == u.name))
            .filter_map(|d| done.get(&d.name).cloned())
            .collect();
        done.insert(u.name.clone(), rx);
        let sender = handle.sender(&u.name);
        tasks.push(tokio::spawn(async move {
            for mut w in waits {
                let _ = w.wait_for(|v| *v).await;
            }
            if let Some(s) = sender {
                let (ack, wait) = oneshot::channel();
                if s.send(Cmd::Stop(ack)).is_ok() {
                    let _ = wait.await;
                }
            }
            let _ = tx.send(true);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}
