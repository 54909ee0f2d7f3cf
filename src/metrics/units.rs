//! Unit series: state (one gauge per state, 1 for the current one), restarts, uptime,
//! health.

use super::MetricSource;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// States every unit gets a `prometheus_stack_unit_state` series for (0 or 1).
pub const UNIT_STATES: [&str; 9] = [
    "pending",
    "starting",
    "running",
    "healthy",
    "stopping",
    "stopped",
    "backoff",
    "failed",
    "completed",
];

/// One unit as the metrics see it.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitRow {
    pub name: String,
    /// Lowercase state name (see `UNIT_STATES`).
    pub state: String,
    pub restarts: u64,
    /// Since the current process started; None when not running.
    pub uptime: Option<Duration>,
    /// None when the unit has no health probe or it has not answered yet.
    pub healthy: Option<bool>,
}

/// Gives the current units (the supervisor's snapshot in the daemon).
pub trait UnitRows: Send + Sync + 'static {
    /// Every unit, now.
    fn unit_rows(&self) -> Vec<UnitRow>;
}

/// Unit series from a `UnitRows`.
pub struct UnitMetrics<R>(pub R);

type Labels = Vec<(String, String)>;

impl<R: UnitRows> MetricSource for UnitMetrics<R> {
    fn collect(&self, registry: &mut Registry) {
        let rows = self.0.unit_rows();
        let state = Family::<Labels, Gauge>::default();
        let restarts = Family::<Labels, Counter>::default();
        let uptime = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        let healthy = Family::<Labels, Gauge>::default();
        for r in &rows {
            let unit = || vec![("unit".to_string(), r.name.clone())];
            let mut states: Vec<&str> = UNIT_STATES.to_vec();
            if !states.contains(&r.state.as_str()) {
                states.push(&r.state);
            }
            for s in states {
                let mut l = unit();
                l.push(("state".into(), s.into()));
                state.get_or_create(&l).set(i64::from(s == r.state));
            }
            restarts.get_or_create(&unit()).inc_by(r.restarts);
            if let Some(up) = r.uptime {
                uptime.get_or_create(&unit()).set(up.as_secs_f64());
            }
            if let Some(h) = r.healthy {
                healthy.get_or_create(&unit()).set(i64::from(h));
            }
        }
        registry.register(
            "prometheus_stack_unit_state",
            "Unit state: 1 for the state the unit is in, 0 for the others",
            state,
        );
        registry.register(
            "prometheus_stack_unit_restarts",
            "Restarts of the unit since the daemon started",
            restarts,
        );
        registry.register(
            "prometheus_stack_unit_uptime_seconds",
            "Seconds since the unit's current process started (absent when not running)",
            uptime,
        );
        registry.register(
            "prometheus_stack_unit_healthy",
            "1 when the unit's health probe passes, 0 when it fails (absent without a probe)",
            healthy,
        );
    }
}

impl UnitRows for crate::supervisor::Handle {
    fn unit_rows(&self) -> Vec<UnitRow> {
        let now = crate::supervisor::state::now();
        self.snapshot()
            .units
            .iter()
            .map(|u| {
                let state = u.state.as_str();
                let up = matches!(state, "running" | "healthy");
                UnitRow {
                    name: u.name.clone(),
                    state: state.to_string(),
                    restarts: u.restarts,
                    uptime: u
                        .started_at
                        .filter(|_| up)
                        .map(|t| Duration::from_secs_f64((now - t).max(0.0))),
                    healthy: match u.health.as_deref() {
                        Some("healthy") => Some(true),
                        Some("unhealthy") => Some(false),
                        _ => None,
                    },
                }
            })
            .collect()
    }
}
