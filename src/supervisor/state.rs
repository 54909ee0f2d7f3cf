//! What the supervisor publishes: one status per unit, shared read-only as a snapshot.

use crate::plan::UnitKind;
use serde::Serialize;
use std::time::{SystemTime, UNIX_EPOCH};

/// A unit's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitState {
    /// Waiting for dependencies or a start gate (the reason says which).
    Pending,
    /// Prepare step or spawn in progress.
    Starting,
    /// The process runs (and its health check has not passed yet, when it has one).
    Running,
    /// Running and its health check passes.
    Healthy,
    Stopping,
    Stopped,
    /// Waiting to restart after a failure.
    Backoff,
    /// Given up (crash loop, restart = never, gate failure) until started by hand.
    Failed,
    /// A oneshot that exited 0.
    Completed,
}

impl UnitState {
    /// The lowercase name used in JSON and the status table.
    pub fn as_str(self) -> &'static str {
        match self {
            UnitState::Pending => "pending",
            UnitState::Starting => "starting",
            UnitState::Running => "running",
            UnitState::Healthy => "healthy",
            UnitState::Stopping => "stopping",
            UnitState::Stopped => "stopped",
            UnitState::Backoff => "backoff",
            UnitState::Failed => "failed",
            UnitState::Completed => "completed",
        }
    }
}

/// One unit's status.
#[derive(Debug, Clone, Serialize)]
pub struct UnitStatus {
    pub name: String,
    pub kind: UnitKind,
    pub state: UnitState,
    pub pid: Option<u32>,
    /// Restarts since the daemon started (automatic, by hand, and by policies).
    pub restarts: u64,
    /// "starting", "healthy" or "unhealthy"; None without a health check.
    pub health: Option<String>,
    /// Unix time (seconds) of the last state change.
    pub since: f64,
    /// Unix time (seconds) the current process started.
    pub started_at: Option<f64>,
    /// How the last run ended ("exit 1", "killed by SIGKILL", a task error).
    pub last_exit: Option<String>,
    /// Why the unit is in its state (what it waits for, why it failed).
    pub reason: Option<String>,
    /// Container name for podman units.
    pub container: Option<String>,
}

impl UnitStatus {
    /// A unit that has not started yet.
    pub fn new(name: &str, kind: UnitKind) -> Self {
        UnitStatus {
            name: name.to_string(),
            kind,
            state: UnitState::Pending,
            pid: None,
            restarts: 0,
            health: None,
            since: now(),
            started_at: None,
            last_exit: None,
            reason: None,
            container: None,
        }
    }
}

/// Every unit's status at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// In plan (start) order.
    pub units: Vec<UnitStatus>,
    /// Unix time (seconds) the supervisor started.
    pub started_at: f64,
    /// Startup is over: every unit reached its start condition or gave up.
    pub ready: bool,
}

impl Snapshot {
    /// The status of one unit.
    pub fn unit(&self, name: &str) -> Option<&UnitStatus> {
        self.units.iter().find(|u| u.name == name)
    }

    /// One line for systemd's STATUS= and logs, e.g. "4 units: 3 healthy, 1 failed (db)".
    pub fn summary(&self) -> String {
        use std::collections::BTreeMap;
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for u in &self.units {
            *counts.entry(u.state.as_str()).or_default() += 1;
        }
        let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
        let failed: Vec<&str> = self
            .units
            .iter()
            .filter(|u| u.state == UnitState::Failed)
            .map(|u| u.name.as_str())
            .collect();
        let mut s = format!("{} units: {}", self.units.len(), parts.join(", "));
        if !failed.is_empty() {
            s.push_str(&format!("; failed: {}", failed.join(", ")));
        }
        s
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
