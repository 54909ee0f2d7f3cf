//! One start and its whole run: prepare, environment, spawn, the running phase, and what
//! its end leads to.

use super::child::{Launcher, UnitChild};
use super::running::Outcome;
use super::{Machine, Step};
use crate::plan::{TaskContext, UnitKind};
use crate::runtime::{self, ExitInfo, SpawnCtx};
use crate::supervisor::UnitState;
use std::time::Duration;
use tokio::time::Instant;

impl Machine {
    /// Starts the unit, supervises the run, and accounts its end.
    pub(super) async fn run_once(&mut self) -> Step {
        self.set(|s| {
            s.state = UnitState::Starting;
            s.pid = None;
            s.reason = None;
            s.health = None;
        });
        let mut child = match self.launch().await {
            Ok(c) => c,
            Err(e) => return self.failed(ExitInfo::error(e), Duration::ZERO),
        };
        let started = Instant::now();
        self.show_running(&child);
        let outcome = self.supervise(&mut child, started).await;
        let uptime = started.elapsed();
        match outcome {
            Outcome::Exited(exit) => {
                // Whatever the leader left in its group goes too.
                child
                    .stop(self.unit.stop_signal, self.unit.stop_timeout)
                    .await;
                self.exited(exit, uptime)
            }
            Outcome::Unhealthy(reason) => {
                self.event(format!("health check failed: {reason}; restarting"));
                self.stopping(&mut child, Some(format!("unhealthy: {reason}")))
                    .await;
                self.set(|s| s.health = Some("unhealthy".into()));
                self.failed(ExitInfo::error(format!("unhealthy: {reason}")), uptime)
            }
            Outcome::Command(t, parts) => self.execute(t, parts, Some(&mut child)).await.into(),
        }
    }

    fn show_running(&self, child: &UnitChild) {
        let has_health = self.unit.health.is_some() && self.unit.kind == UnitKind::Longrun;
        let (pid, container) = (child.pid(), child.container());
        self.set(|s| {
            s.state = UnitState::Running;
            s.pid = pid;
            s.container = container;
            s.started_at = Some(crate::supervisor::state::now());
            s.health = has_health.then(|| "starting".to_string());
        });
    }

    /// The prepare hook, the environment, and the child; an error is one line for status.
    async fn launch(&mut self) -> Result<UnitChild, String> {
        match self.shared.launcher.clone() {
            Launcher::Runtime => self.launch_real().await.map(UnitChild::Real),
            #[cfg(test)]
            Launcher::Fake(script) => script.launch().map(UnitChild::Fake),
        }
    }

    async fn launch_real(&mut self) -> Result<runtime::Child, String> {
        let plan = self.shared.plan();
        if let Some(prep) = &self.unit.prepare {
            let ctx = TaskContext {
                unit: self.unit.name.clone(),
                plan: plan.clone(),
                secrets: self.shared.secrets.clone(),
                log: self.log.as_fn(),
            };
            prep.run(ctx)
                .await
                .map_err(|e| format!("prepare failed: {e}"))?;
        }
        let env =
            runtime::resolve_env(&self.unit, &self.shared.secrets).map_err(|e| e.to_string())?;
        runtime::spawn(SpawnCtx {
            unit: &self.unit,
            env: &env,
            plan: &plan,
            log: &self.log,
            secrets: &self.shared.secrets,
        })
        .await
        .map_err(|e| e.to_string())
    }
}
