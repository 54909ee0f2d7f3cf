//! The running phase of a unit: waiting for its exit or a command while health probes
//! run alongside.

use super::{Machine, Outcome};
use crate::plan::UnitKind;
use crate::runtime::Child;
use crate::supervisor::health::{self, ProbeCtx};
use crate::supervisor::{Cmd, UnitState};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Probe interval while a unit has not been healthy yet (fast startup ordering): the
/// first probe after `FIRST_PROBE`, then doubling up to this.
const STARTUP_PROBE: Duration = Duration::from_millis(250);
const FIRST_PROBE: Duration = Duration::from_millis(10);

/// One health probe in flight: its result and the log-probe state it carried.
type ProbeFuture = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = (
                    Result<(), String>,
                    Option<tokio::sync::broadcast::Receiver<Arc<str>>>,
                    bool,
                ),
            > + Send,
    >,
>;

impl Machine {
    /// Runs until the process ends, a health check gives up, or a command arrives.
    pub(super) async fn supervise(&mut self, child: &mut Child, started: Instant) -> Outcome {
        let health = self
            .unit
            .health
            .clone()
            .filter(|_| self.unit.kind == UnitKind::Longrun);
        // Log-probe state travels into each probe and back out with its result.
        let mut lines = health.as_ref().map(|_| self.log.follow());
        let mut seen = false;
        let mut healthy = false;
        let mut fails = 0u32;
        let mut startup_step = FIRST_PROBE;
        let mut next_probe = tokio::time::Instant::now() + startup_step;
        let plan = self.shared.plan();
        // A probe runs alongside exit and command handling, so a slow probe never delays
        // noticing a crash or obeying a stop.
        let mut probing: Option<ProbeFuture> = None;
        loop {
            tokio::select! {
                exit = child.wait() => return Outcome::Exited(exit),
                cmd = self.rx.recv() => match cmd {
                    None => return Outcome::Closed,
                    Some(Cmd::Start) => {}
                    Some(Cmd::Stop(ack)) => return Outcome::Stop(ack),
                    Some(Cmd::Restart { reason, done }) => return Outcome::Restart(reason, done),
                    Some(Cmd::Reload { unit, reason, done }) => return Outcome::Reload(unit, reason, done),
                    Some(Cmd::Remove(ack)) => return Outcome::Remove(ack),
                },
                _ = tokio::time::sleep_until(next_probe), if health.is_some() && probing.is_none() => {
                    let h = health.clone().expect("guarded");
                    let (plan, secrets, log) = (plan.clone(), self.shared.secrets.clone(), self.log.clone());
                    let name = self.unit.name.clone();
                    let (mut l, mut sn) = (lines.take(), seen);
                    probing = Some(Box::pin(async move {
                        let r = health::probe(&h.probe, h.timeout, ProbeCtx {
                            unit: &name,
                            plan: &plan,
                            secrets: &secrets,
                            log: &log,
                            lines: &mut l,
                            seen: &mut sn,
                        }).await;
                        (r, l, sn)
                    }));
                }
                (r, l, sn) = async { probing.as_mut().expect("guarded").await }, if probing.is_some() => {
                    probing = None;
                    lines = l;
                    seen = sn;
                    let h = health.as_ref().expect("probing implies health");
                    match r {
                        Ok(()) => {
                            fails = 0;
                            if !healthy {
                                healthy = true;
                                self.set(|s| {
                                    s.state = UnitState::Healthy;
                                    s.health = Some("healthy".into());
                                    s.reason = None;
                                });
                            }
                        }
                        Err(e) => {
                            let grace = !healthy && started.elapsed() < h.start_period;
                            if !grace {
                                fails += 1;
                                if fails >= h.retries.max(1) {
                                    return Outcome::Unhealthy(e);
                                }
                            }
                            if !healthy {
                                self.set(|s| s.reason = Some(format!("health: {e}")));
                            }
                        }
                    }
                    let every = if healthy {
                        h.interval
                    } else {
                        startup_step = (startup_step * 2).min(STARTUP_PROBE);
                        h.interval.min(startup_step)
                    };
                    next_probe = tokio::time::Instant::now() + every;
                }
            }
        }
    }
}
