//! One unit's state machine, run as its own task:
//! `pending` (dependencies, gates) → `starting` (prepare, spawn) → `running`/`healthy` →
//! on exit or failed health: backoff and restart, or `failed` after a crash loop, or
//! `completed` (oneshot) / `stopped`.
//!
//! Commands (start, stop, restart, reload, remove) interrupt any waiting phase; what
//! each does is decided in one table, [`transition::decide`]; this module only waits and
//! carries out what the table says. Run accounting (crash loop, backoff) is in `exit`, the
//! start in `start`, the running phase with its health probes in `running`, and the one
//! seam to processes (a fake child in tests) in `child`.

mod child;
mod exit;
mod running;
mod start;
#[cfg(test)]
mod tests;
pub(crate) mod transition;

pub(crate) use child::Launcher;

use super::backoff::Backoff;
use super::{condition_holds, Cmd, Gate, Shared, UnitState};
use crate::plan::Unit;
use crate::runtime;
use child::UnitChild;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use transition::{decide, Event, Goto, Phase, Rest, Show, StopNote, Transition};

/// How often gates are asked again while a unit waits.
const GATE_POLL: Duration = Duration::from_secs(1);

struct Machine {
    shared: Arc<Shared>,
    unit: Arc<Unit>,
    rx: mpsc::UnboundedReceiver<Cmd>,
    backoff: Backoff,
    failures: VecDeque<Instant>,
    log: runtime::LogSink,
}

/// Where the driver goes next: a phase, with what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Idle(Rest),
    Pending,
    Backoff(Duration),
    /// Start now (dependencies and gates passed).
    Start,
    End,
}

impl From<Goto> for Step {
    fn from(g: Goto) -> Step {
        match g {
            Goto::Pending => Step::Pending,
            Goto::Idle(r) => Step::Idle(r),
            Goto::End => Step::End,
            Goto::Stay => unreachable!("Stay is handled where the unit waits"),
        }
    }
}

/// A command taken apart: what the table needs ([`Event`]) and what the driver carries.
#[derive(Default)]
pub(crate) struct Parts {
    /// The command's reason (restart, reload).
    reason: Option<String>,
    /// The line the unit's log gets when the table says to log.
    log_line: Option<String>,
    definition: Option<Arc<Unit>>,
    ack: Option<oneshot::Sender<()>>,
}

/// `None` is the end of the command channel (the daemon is exiting).
fn split(cmd: Option<Cmd>) -> (Event, Parts) {
    let p = Parts::default();
    match cmd {
        None => (Event::Closed, p),
        Some(Cmd::Start) => (Event::Start, p),
        Some(Cmd::Stop(ack)) => (
            Event::Stop,
            Parts {
                ack: Some(ack),
                ..p
            },
        ),
        Some(Cmd::Remove(ack)) => (
            Event::Remove,
            Parts {
                ack: Some(ack),
                ..p
            },
        ),
        Some(Cmd::Restart { reason, done }) => (
            Event::Restart,
            Parts {
                log_line: Some(format!("restart: {reason}")),
                reason: Some(reason),
                ack: done,
                ..p
            },
        ),
        Some(Cmd::Reload { unit, reason, done }) => (
            Event::Reload,
            Parts {
                log_line: Some(reason.clone()),
                reason: Some(reason),
                definition: unit,
                ack: Some(done),
            },
        ),
    }
}

/// Runs a unit's machine from `first` until the unit is removed or the daemon exits.
pub(crate) async fn run(
    shared: Arc<Shared>,
    unit: Arc<Unit>,
    rx: mpsc::UnboundedReceiver<Cmd>,
    first: Step,
) {
    let log = shared.log_sink(&unit.name);
    let mut m = Machine {
        backoff: Backoff::new(unit.backoff),
        shared,
        unit,
        rx,
        failures: VecDeque::new(),
        log,
    };
    m.main(first).await;
}

impl Machine {
    fn set(&self, f: impl FnOnce(&mut super::UnitStatus)) {
        self.shared.update(&self.unit.name, f);
    }

    fn event(&self, line: String) {
        self.log.line(format!("-- {line}"));
    }

    async fn main(&mut self, first: Step) {
        let mut step = first;
        loop {
            step = match step {
                Step::Idle(rest) => self.idle(rest).await,
                Step::Pending => self.pending().await,
                Step::Backoff(delay) => self.backoff(delay).await,
                Step::Start => self.run_once().await,
                Step::End => return,
            };
        }
    }

    /// Decides what a command means in `phase` and carries it out.
    async fn command(
        &mut self,
        phase: Phase,
        cmd: Option<Cmd>,
        child: Option<&mut UnitChild>,
    ) -> Goto {
        let (event, parts) = split(cmd);
        self.execute(decide(phase, event), parts, child).await
    }

    /// Carries out a transition of the table, in the order of its fields.
    async fn execute(
        &mut self,
        t: Transition,
        mut parts: Parts,
        child: Option<&mut UnitChild>,
    ) -> Goto {
        if t.log {
            if let Some(line) = parts.log_line.take() {
                self.event(line);
            }
        }
        if let (Some(note), Some(child)) = (t.stop_child, child) {
            let shown = match note {
                StopNote::ByHand => Some("stopped by hand".to_string()),
                StopNote::Command => parts.reason.clone(),
                StopNote::Removed => Some("removed from the config".to_string()),
                StopNote::Keep => None,
            };
            self.stopping(child, shown).await;
        }
        if let Some(u) = parts.definition.take().filter(|_| t.take_definition) {
            self.replace(u);
        }
        if t.forget_failures {
            self.failures.clear();
        }
        if t.reset_backoff {
            self.backoff.reset();
        }
        self.show(t.show, parts.reason.take());
        if let Some(ack) = parts.ack {
            let _ = ack.send(());
        }
        t.next
    }

    fn show(&self, show: Show, reason: Option<String>) {
        match show {
            Show::Keep => {}
            Show::StoppedByHand => self.set(|s| {
                s.state = UnitState::Stopped;
                s.pid = None;
                s.health = None;
                s.reason = Some("stopped by hand".into());
            }),
            Show::CountedRestart => self.set(|s| {
                s.restarts += 1;
                s.reason = reason;
            }),
        }
    }

    fn replace(&mut self, u: Arc<Unit>) {
        self.backoff = Backoff::new(u.backoff);
        self.unit = u;
    }

    /// Stopped, failed or completed: wait for a command.
    async fn idle(&mut self, rest: Rest) -> Step {
        loop {
            let cmd = self.rx.recv().await;
            match self.command(Phase::Idle(rest), cmd, None).await {
                Goto::Stay => {}
                next => return next.into(),
            }
        }
    }

    /// Waits for dependencies and gates, then starts.
    async fn pending(&mut self) -> Step {
        let mut snaps = self.shared.snap_tx.subscribe();
        loop {
            if let Some(next) = self.queued(Phase::Pending).await {
                return next;
            }
            match self.check_start() {
                Gate::Open => return Step::Start,
                Gate::Wait(reason) => self.set(|s| {
                    s.state = UnitState::Pending;
                    s.pid = None;
                    s.reason = Some(reason);
                }),
                Gate::Fail(reason) => {
                    self.event(format!("failed: {reason}"));
                    self.set(|s| {
                        s.state = UnitState::Failed;
                        s.pid = None;
                        s.reason = Some(reason);
                    });
                    return Step::Idle(Rest::Failed);
                }
            }
            tokio::select! {
                cmd = self.rx.recv() => match self.command(Phase::Pending, cmd, None).await {
                    Goto::Stay => {}
                    next => return next.into(),
                },
                _ = snaps.changed() => {}
                _ = tokio::time::sleep(GATE_POLL) => {}
            }
        }
    }

    /// Meets the commands that arrived while the unit was busy (a stop sent during a
    /// reload's restart, say) before anything starts: otherwise a stop would first wait
    /// for a whole new run to start and then stop it.
    async fn queued(&mut self, phase: Phase) -> Option<Step> {
        loop {
            let cmd = match self.rx.try_recv() {
                Ok(cmd) => Some(cmd),
                Err(mpsc::error::TryRecvError::Empty) => return None,
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            };
            match self.command(phase, cmd, None).await {
                Goto::Stay => {}
                next => return Some(next.into()),
            }
        }
    }

    /// Waits out a restart delay; a command may cut it short.
    async fn backoff(&mut self, delay: Duration) -> Step {
        if delay.is_zero() {
            return Step::Pending;
        }
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return Step::Pending,
                cmd = self.rx.recv() => match self.command(Phase::Backoff, cmd, None).await {
                    Goto::Stay => {}
                    next => return next.into(),
                },
            }
        }
    }

    /// Dependencies first (what is waited for, and why), then the start gates.
    fn check_start(&self) -> Gate {
        for d in &self.unit.depends_on {
            let st = self.shared.status(&d.unit);
            let state = st.as_ref().map(|s| s.state);
            if state.is_some_and(|s| condition_holds(d.condition, s)) {
                continue;
            }
            let cond = match d.condition {
                crate::plan::Condition::Started => "started",
                crate::plan::Condition::Healthy => "healthy",
                crate::plan::Condition::Completed => "completed",
            };
            let mut reason = format!("waiting for {} ({cond})", d.unit);
            if let Some(s) = st {
                reason.push_str(&format!(": {} is {}", d.unit, s.state.as_str()));
                if let Some(r) = s.reason.filter(|_| s.state == UnitState::Failed) {
                    reason.push_str(&format!(" ({r})"));
                }
            }
            return Gate::Wait(reason);
        }
        for g in &self.shared.gates {
            match g.check(&self.unit) {
                Gate::Open => {}
                other => return other,
            }
        }
        Gate::Open
    }

    async fn stopping(&mut self, child: &mut UnitChild, reason: Option<String>) {
        self.set(|s| {
            s.state = UnitState::Stopping;
            if reason.is_some() {
                s.reason = reason;
            }
        });
        let exit = child
            .stop(self.unit.stop_signal, self.unit.stop_timeout)
            .await;
        self.set(|s| {
            s.pid = None;
            s.last_exit = Some(exit.to_string());
        });
    }
}
