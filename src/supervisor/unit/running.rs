//! The running phase of a unit: waiting for its exit or a command while health probes
//! run alongside.

use super::child::UnitChild;
use super::transition::{decide, Goto, Phase, Transition};
use super::{split, Machine, Parts};
use crate::plan::{Health, UnitKind};
use crate::supervisor::health::{self, ProbeCtx};
use crate::supervisor::UnitState;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;

/// Probe interval while a unit has not been healthy yet (fast startup ordering): the
/// first probe after `FIRST_PROBE`, then doubling up to this.
const STARTUP_PROBE: Duration = Duration::from_millis(250);
const FIRST_PROBE: Duration = Duration::from_millis(10);

/// A log probe's state: the followed lines and whether the text was seen.
type LogState = (Option<broadcast::Receiver<Arc<str>>>, bool);

/// One health probe in flight: its result and the log-probe state it carried.
type ProbeFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = (Result<(), String>, LogState)> + Send>>;

/// How a run ended.
pub(super) enum Outcome {
    Exited(crate::runtime::ExitInfo),
    Unhealthy(String),
    /// A command whose transition leaves the running phase (not yet carried out).
    Command(Transition, Parts),
}

/// The health checking of one run.
struct Probes {
    health: Health,
    /// Log-probe state; travels into each probe and back out with its result.
    log: LogState,
    healthy: bool,
    fails: u32,
    startup_step: Duration,
    next: Instant,
    started: Instant,
}

impl Probes {
    /// What to make of one probe's result: Some(error) when the unit is given up as unhealthy.
    fn account(&mut self, r: &Result<(), String>) -> Option<String> {
        match r {
            Ok(()) => self.fails = 0,
            Err(e) => {
                let grace = !self.healthy && self.started.elapsed() < self.health.start_period;
                if !grace {
                    self.fails += 1;
                    if self.fails >= self.health.retries.max(1) {
                        return Some(e.clone());
                    }
                }
            }
        }
        let every = if self.healthy || r.is_ok() {
            self.health.interval
        } else {
            self.startup_step = (self.startup_step * 2).min(STARTUP_PROBE);
            self.health.interval.min(self.startup_step)
        };
        self.next = Instant::now() + every;
        None
    }
}

impl Machine {
    /// Runs until the process ends, a health check gives up, or a command arrives that
    /// leaves this phase.
    pub(super) async fn supervise(&mut self, child: &mut UnitChild, started: Instant) -> Outcome {
        let mut probes = self
            .unit
            .health
            .clone()
            .filter(|_| self.unit.kind == UnitKind::Longrun)
            .map(|health| Probes {
                health,
                log: (Some(self.log.follow()), false),
                healthy: false,
                fails: 0,
                startup_step: FIRST_PROBE,
                next: Instant::now() + FIRST_PROBE,
                started,
            });
        // A probe runs alongside exit and command handling, so a slow probe never delays
        // noticing a crash or obeying a stop.
        let mut probing: Option<ProbeFuture> = None;
        loop {
            let due = probes.as_ref().map(|p| p.next);
            tokio::select! {
                exit = child.wait() => return Outcome::Exited(exit),
                cmd = self.rx.recv() => {
                    let (event, parts) = split(cmd);
                    let t = decide(Phase::Running, event);
                    if t.next != Goto::Stay {
                        return Outcome::Command(t, parts);
                    }
                    debug_assert!(t.stop_child.is_none(), "staying up never stops the child");
                    self.execute(t, parts, None).await;
                }
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() && probing.is_none() => {
                    let p = probes.as_mut().expect("guarded");
                    probing = Some(self.probe(&p.health, std::mem::take(&mut p.log)));
                }
                (r, log) = async { probing.as_mut().expect("guarded").await }, if probing.is_some() => {
                    probing = None;
                    let p = probes.as_mut().expect("probing implies health");
                    p.log = log;
                    if let Some(e) = self.probed(p, r) {
                        return Outcome::Unhealthy(e);
                    }
                }
            }
        }
    }

    /// Starts one probe.
    fn probe(&self, h: &Health, log: LogState) -> ProbeFuture {
        let (plan, secrets, sink) = (
            self.shared.plan(),
            self.shared.secrets.clone(),
            self.log.clone(),
        );
        let (name, probe, timeout) = (self.unit.name.clone(), h.probe.clone(), h.timeout);
        let (mut lines, mut seen) = log;
        Box::pin(async move {
            let r = health::probe(
                &probe,
                timeout,
                ProbeCtx {
                    unit: &name,
                    plan: &plan,
                    secrets: &secrets,
                    log: &sink,
                    lines: &mut lines,
                    seen: &mut seen,
                },
            )
            .await;
            (r, (lines, seen))
        })
    }

    /// Shows a probe's result; Some(error) when the unit is given up as unhealthy.
    fn probed(&self, p: &mut Probes, r: Result<(), String>) -> Option<String> {
        let was_healthy = p.healthy;
        if let Some(e) = p.account(&r) {
            return Some(e);
        }
        match r {
            Ok(()) if !was_healthy => {
                p.healthy = true;
                self.set(|s| {
                    s.state = UnitState::Healthy;
                    s.health = Some("healthy".into());
                    s.reason = None;
                });
            }
            Ok(()) => {}
            Err(e) if !was_healthy => self.set(|s| s.reason = Some(format!("health: {e}"))),
            Err(_) => {}
        }
        None
    }
}
