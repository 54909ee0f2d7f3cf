//! The supervisor's view of units as the proxy needs it: a route to a unit is forwarded
//! only while the unit is healthy (or running, when it has no health check).

use super::{UnitHealth, UnitView};
use crate::supervisor::{Handle, UnitState, UnitStatus};

fn view(u: &UnitStatus) -> UnitView {
    let healthy = match u.state {
        UnitState::Healthy => true,
        UnitState::Running => u.health.is_none(),
        _ => false,
    };
    UnitView {
        name: u.name.clone(),
        state: u.state.as_str().to_string(),
        healthy,
        reason: u.reason.clone(),
    }
}

impl UnitHealth for Handle {
    fn unit_state(&self, unit: &str) -> Option<UnitView> {
        self.snapshot()
            .units
            .iter()
            .find(|u| u.name == unit)
            .map(view)
    }

    fn all_units(&self) -> Vec<UnitView> {
        self.snapshot().units.iter().map(view).collect()
    }
}
