//! One unit's state machine, run as its own task:
//! `pending` (dependencies, gates) → `starting` (prepare, spawn) → `running`/`healthy` →
//! on exit or failed health: backoff and restart, or `failed` after a crash loop, or
//! `completed` (oneshot) / `stopped`. Commands (start, stop, restart, reload) interrupt
//! any waiting phase.

mod running;

use super::backoff::Backoff;
use super::{condition_holds, Cmd, Gate, Shared, UnitState};
use crate::plan::{RestartPolicy, TaskContext, Unit, UnitKind};
use crate::runtime::{self, Child, ExitInfo, SpawnCtx};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// How often gates are asked again while a unit waits.
const GATE_POLL: Duration = Duration::from_secs(1);

struct Machine {
    shared: Arc<Shared>,
    unit: Arc<Unit>,
    rx: mpsc::UnboundedReceiver<Cmd>,
    want_up: bool,
    backoff: Backoff,
    failures: VecDeque<Instant>,
    log: runtime::LogSink,
}

/// How a run of the process ended.
enum Outcome {
    Exited(ExitInfo),
    Unhealthy(String),
    Stop(oneshot::Sender<()>),
    Restart(String, Option<oneshot::Sender<()>>),
    Reload(Option<Arc<Unit>>, String, oneshot::Sender<()>),
    Remove(oneshot::Sender<()>),
    /// The handle is gone (daemon exiting).
    Closed,
}

/// What to do after a failure was accounted.
enum Next {
    Again,
    Idle,
    End,
}

pub(crate) async fn run(shared: Arc<Shared>, unit: Arc<Unit>, rx: mpsc::UnboundedReceiver<Cmd>) {
    let log = shared.log_sink(&unit.name);
    let mut m = Machine {
        backoff: Backoff::new(unit.backoff),
        shared,
        unit,
        rx,
        want_up: true,
        failures: VecDeque::new(),
        log,
    };
    m.main().await;
}

impl Machine {
    fn set(&self, f: impl FnOnce(&mut super::UnitStatus)) {
        self.shared.update(&self.unit.name, f);
    }

    fn event(&self, line: String) {
        self.log.line(format!("-- {line}"));
    }

    async fn main(&mut self) {
        loop {
            if !self.want_up {
                match self.idle().await {
                    Next::End => return,
                    _ => continue,
                }
            }
            if !self.pending().await {
                continue;
            }
            match self.run_once().await {
                Next::End => return,
                Next::Idle | Next::Again => continue,
            }
        }
    }

    /// Stopped, failed or completed: wait for a command.
    async fn idle(&mut self) -> Next {
        let Some(cmd) = self.rx.recv().await else {
            return Next::End;
        };
        match cmd {
            Cmd::Start => self.start_by_hand(None),
            Cmd::Restart { reason, done } => {
                self.start_by_hand(Some(reason));
                if let Some(d) = done {
                    let _ = d.send(());
                }
            }
            Cmd::Stop(ack) => {
                let state = self.shared.status(&self.unit.name).map(|s| s.state);
                if state == Some(UnitState::Failed) || state == Some(UnitState::Pending) {
                    self.set(|s| {
                        s.state = UnitState::Stopped;
                        s.reason = Some("stopped by hand".into());
                    });
                }
                let _ = ack.send(());
            }
            Cmd::Reload { unit, reason, done } => {
                let state = self.shared.status(&self.unit.name).map(|s| s.state);
                if let Some(u) = unit {
                    self.replace(u);
                }
                // A unit stopped by hand stays stopped; a failed or completed one runs again.
                if state != Some(UnitState::Stopped) {
                    self.start_by_hand(Some(reason));
                }
                let _ = done.send(());
            }
            Cmd::Remove(ack) => {
                let _ = ack.send(());
                return Next::End;
            }
        }
        Next::Again
    }

    fn start_by_hand(&mut self, reason: Option<String>) {
        self.want_up = true;
        self.failures.clear();
        self.backoff.reset();
        if let Some(r) = reason {
            self.event(r);
        }
    }

    fn replace(&mut self, u: Arc<Unit>) {
        self.backoff = Backoff::new(u.backoff);
        self.unit = u;
    }

    /// Waits for dependencies and gates. False when a command changed the plan (go round).
    async fn pending(&mut self) -> bool {
        let mut snaps = self.shared.snap_tx.subscribe();
        loop {
            match self.check_start() {
                Gate::Open => return true,
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
                    self.want_up = false;
                    return false;
                }
            }
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    None => { self.want_up = false; return false; }
                    Some(Cmd::Start) => {}
                    Some(Cmd::Restart { done, .. }) => { if let Some(d) = done { let _ = d.send(()); } }
                    Some(Cmd::Stop(ack)) => {
                        self.want_up = false;
                        self.set(|s| { s.state = UnitState::Stopped; s.reason = Some("stopped by hand".into()); });
                        let _ = ack.send(());
                        return false;
                    }
                    Some(Cmd::Reload { unit, done, .. }) => {
                        if let Some(u) = unit { self.replace(u); }
                        let _ = done.send(());
                    }
                    Some(Cmd::Remove(ack)) => {
                        // The task ends at the next idle(); make it so at once.
                        self.want_up = false;
                        self.rx.close();
                        let _ = ack.send(());
                        return false;
                    }
                },
                _ = snaps.changed() => {}
                _ = tokio::time::sleep(GATE_POLL) => {}
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

    /// One start and its whole run; accounts the end.
    async fn run_once(&mut self) -> Next {
        self.set(|s| {
            s.state = UnitState::Starting;
            s.pid = None;
            s.reason = None;
            s.health = None;
        });
        let plan = self.shared.plan();
        if let Some(prep) = &self.unit.prepare {
            let ctx = TaskContext {
                unit: self.unit.name.clone(),
                plan: plan.clone(),
                secrets: self.shared.secrets.clone(),
                log: self.log.as_fn(),
            };
            if let Err(e) = prep.run(ctx).await {
                return self
                    .failed(
                        ExitInfo::error(format!("prepare failed: {e}")),
                        Duration::ZERO,
                    )
                    .await;
            }
        }
        let env = match runtime::resolve_env(&self.unit, &self.shared.secrets) {
            Ok(e) => e,
            Err(e) => {
                return self
                    .failed(ExitInfo::error(e.to_string()), Duration::ZERO)
                    .await
            }
        };
        let spawned = runtime::spawn(SpawnCtx {
            unit: &self.unit,
            env: &env,
            plan: &plan,
            log: &self.log,
            secrets: &self.shared.secrets,
        })
        .await;
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                return self
                    .failed(ExitInfo::error(e.to_string()), Duration::ZERO)
                    .await
            }
        };
        let started = Instant::now();
        let has_health = self.unit.health.is_some() && self.unit.kind == UnitKind::Longrun;
        let pid = child.pid();
        let container = child.container();
        self.set(|s| {
            s.state = UnitState::Running;
            s.pid = pid;
            s.container = container;
            s.started_at = Some(super::state::now());
            s.health = has_health.then(|| "starting".to_string());
        });
        let outcome = self.supervise(&mut child, started).await;
        let uptime = started.elapsed();
        match outcome {
            Outcome::Exited(exit) => {
                // Whatever the leader left in its group goes too.
                child
                    .stop(self.unit.stop_signal, self.unit.stop_timeout)
                    .await;
                self.exited(exit, uptime).await
            }
            Outcome::Unhealthy(reason) => {
                self.event(format!("health check failed: {reason}; restarting"));
                self.stopping(&mut child, Some(format!("unhealthy: {reason}")))
                    .await;
                self.set(|s| s.health = Some("unhealthy".into()));
                self.failed(ExitInfo::error(format!("unhealthy: {reason}")), uptime)
                    .await
            }
            Outcome::Stop(ack) => {
                self.stopping(&mut child, Some("stopped by hand".into()))
                    .await;
                self.want_up = false;
                self.set(|s| {
                    s.state = UnitState::Stopped;
                    s.pid = None;
                    s.health = None;
                    s.reason = Some("stopped by hand".into());
                });
                let _ = ack.send(());
                Next::Idle
            }
            Outcome::Restart(reason, done) => {
                self.event(format!("restart: {reason}"));
                self.stopping(&mut child, Some(reason.clone())).await;
                self.set(|s| {
                    s.restarts += 1;
                    s.reason = Some(reason);
                });
                if let Some(d) = done {
                    let _ = d.send(());
                }
                Next::Again
            }
            Outcome::Reload(unit, reason, done) => {
                self.event(reason.clone());
                self.stopping(&mut child, Some(reason.clone())).await;
                if let Some(u) = unit {
                    self.replace(u);
                }
                self.set(|s| {
                    s.restarts += 1;
                    s.reason = Some(reason);
                });
                self.failures.clear();
                let _ = done.send(());
                Next::Again
            }
            Outcome::Remove(ack) => {
                self.stopping(&mut child, Some("removed from the config".into()))
                    .await;
                let _ = ack.send(());
                Next::End
            }
            Outcome::Closed => {
                self.stopping(&mut child, None).await;
                Next::End
            }
        }
    }

    async fn stopping(&mut self, child: &mut Child, reason: Option<String>) {
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

    /// The process ended by itself.
    async fn exited(&mut self, exit: ExitInfo, uptime: Duration) -> Next {
        let text = exit.to_string();
        self.set(|s| {
            s.pid = None;
            s.last_exit = Some(text.clone());
        });
        if exit.success() {
            if self.unit.kind == UnitKind::Oneshot {
                self.event("completed".into());
                self.want_up = false;
                self.set(|s| {
                    s.state = UnitState::Completed;
                    s.health = None;
                    s.reason = None;
                });
                return Next::Idle;
            }
            if self.unit.restart != RestartPolicy::Always {
                self.event(format!(
                    "exited ({text}); restart = on-failure: not restarted"
                ));
                self.want_up = false;
                self.set(|s| {
                    s.state = UnitState::Stopped;
                    s.health = None;
                    s.reason = Some(format!("exited ({text})"));
                });
                return Next::Idle;
            }
        }
        self.failed(exit, uptime).await
    }

    /// Accounts a failed start or run: crash loop → failed, else restart per policy.
    async fn failed(&mut self, exit: ExitInfo, uptime: Duration) -> Next {
        let text = exit.to_string();
        let now = Instant::now();
        let cl = self.unit.crash_loop;
        if !exit.success() {
            self.failures.push_back(now);
        }
        while self
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > cl.window)
        {
            self.failures.pop_front();
        }
        let give_up = if self.failures.len() >= cl.failures as usize {
            Some(format!(
                "crash loop: {} failures within {}; last: {text}; start it by hand after fixing",
                self.failures.len(),
                crate::config::Dur(cl.window)
            ))
        } else if self.unit.restart == RestartPolicy::Never {
            Some(format!("{text} (restart = never)"))
        } else {
            None
        };
        if let Some(reason) = give_up {
            self.event(format!("failed: {reason}"));
            tracing::error!("unit {}: {reason}", self.unit.name);
            self.want_up = false;
            self.set(|s| {
                s.state = UnitState::Failed;
                s.pid = None;
                s.health = None;
                s.last_exit = Some(text.clone());
                s.reason = Some(reason);
            });
            return Next::Idle;
        }
        let delay = self.backoff.next(uptime);
        self.event(format!(
            "{text}; restarting in {}",
            crate::config::Dur(delay)
        ));
        self.set(|s| {
            s.state = UnitState::Backoff;
            s.pid = None;
            s.last_exit = Some(text.clone());
            s.restarts += 1;
            s.reason = Some(format!(
                "{text}; restarting in {}",
                crate::config::Dur(delay)
            ));
        });
        if delay.is_zero() {
            return Next::Again;
        }
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        tokio::select! {
            _ = &mut sleep => Next::Again,
            cmd = self.rx.recv() => match cmd {
                None => Next::End,
                Some(Cmd::Start) => { self.start_by_hand(None); Next::Again }
                Some(Cmd::Restart { done, .. }) => {
                    if let Some(d) = done { let _ = d.send(()); }
                    Next::Again
                }
                Some(Cmd::Stop(ack)) => {
                    self.want_up = false;
                    self.set(|s| { s.state = UnitState::Stopped; s.reason = Some("stopped by hand".into()); });
                    let _ = ack.send(());
                    Next::Idle
                }
                Some(Cmd::Reload { unit, done, .. }) => {
                    if let Some(u) = unit { self.replace(u); }
                    self.failures.clear();
                    let _ = done.send(());
                    Next::Again
                }
                Some(Cmd::Remove(ack)) => { let _ = ack.send(()); Next::End }
            },
        }
    }
}
