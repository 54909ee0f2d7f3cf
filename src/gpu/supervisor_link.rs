//! The GPU watch on the supervisor: units and pids from its snapshot, restarts through
//! its handle, the `min_free` gate as one of its start gates.

use super::{policies_of, GpuGate, GpuMonitor, Restarter, UnitPids, UnitProc};
use crate::plan::{BoxFuture, Unit};
use crate::supervisor::{Gate, Handle, StartGate};
use std::sync::Arc;

impl UnitPids for Handle {
    fn unit_pids(&self) -> Vec<UnitProc> {
        self.snapshot()
            .units
            .iter()
            .map(|u| UnitProc {
                name: u.name.clone(),
                pid: u.pid,
                container: u.container.clone(),
            })
            .collect()
    }
}

impl Restarter for Handle {
    fn restart(&self, unit: &str, reason: &str) -> BoxFuture<Result<(), String>> {
        let h = self.clone();
        let (unit, reason) = (unit.to_string(), reason.to_string());
        Box::pin(async move {
            h.restart_with_reason(&unit, reason)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

impl StartGate for GpuGate {
    fn check(&self, unit: &Unit) -> Gate {
        GpuGate::check(self, unit)
    }
}

impl GpuMonitor {
    /// Attributes processes to the supervisor's units, follows its plan's GPU policies
    /// across reloads, and restarts through it. Must run inside a tokio runtime.
    pub fn connect_supervisor(&self, handle: &Handle) {
        let h = handle.clone();
        self.follow_policies(Arc::new(move || policies_of(&h.plan())));
        self.connect(Arc::new(handle.clone()), Arc::new(handle.clone()));
    }
}
