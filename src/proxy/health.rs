//! Upstream health as the proxy sees it: the supervisor's snapshot implements
//! [`UnitHealth`]; tests and the standalone proxy use the two simple versions here.

use std::collections::BTreeMap;
use std::sync::RwLock;

/// One unit's state for the proxy (gate a route, list it on the 503 page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitView {
    pub name: String,
    /// Supervisor state word, e.g. `starting`, `running`, `healthy`, `backoff`, `failed`.
    pub state: String,
    /// Routes to this unit are forwarded only while this is true.
    pub healthy: bool,
    /// Why it is not healthy (last error), shown on the status page.
    pub reason: Option<String>,
}

/// Read-only view of unit health; must be cheap (called once per request to a unit).
pub trait UnitHealth: Send + Sync + 'static {
    /// The unit's state, or None when the supervisor does not know it.
    fn unit_state(&self, unit: &str) -> Option<UnitView>;
    /// Every unit, for the status page.
    fn all_units(&self) -> Vec<UnitView>;
}

/// Every unit is healthy (standalone proxy, routes to fixed addresses).
#[derive(Debug, Default, Clone, Copy)]
pub struct AlwaysHealthy;

impl UnitHealth for AlwaysHealthy {
    fn unit_state(&self, unit: &str) -> Option<UnitView> {
        Some(UnitView {
            name: unit.to_string(),
            state: "running".into(),
            healthy: true,
            reason: None,
        })
    }
    fn all_units(&self) -> Vec<UnitView> {
        Vec::new()
    }
}

/// Health set by hand (tests, and adapters that push state instead of being asked).
#[derive(Debug, Default)]
pub struct SettableHealth {
    units: RwLock<BTreeMap<String, UnitView>>,
}

impl SettableHealth {
    /// Empty: every unit unknown, so every unit route answers 503.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets one unit's state.
    pub fn set(&self, name: &str, state: &str, healthy: bool, reason: Option<&str>) {
        let view = UnitView {
            name: name.to_string(),
            state: state.to_string(),
            healthy,
            reason: reason.map(str::to_string),
        };
        self.units
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), view);
    }
}

impl UnitHealth for SettableHealth {
    fn unit_state(&self, unit: &str) -> Option<UnitView> {
        self.units
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(unit)
            .cloned()
    }
    fn all_units(&self) -> Vec<UnitView> {
        self.units
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}
