//! Accounting a run's end: a oneshot completed, a clean exit under `on-failure`, or a
//! failure that either gives up (crash loop, `restart = never`) or waits out a backoff.

use super::transition::Rest;
use super::{Machine, Step};
use crate::config::Dur;
use crate::plan::{RestartPolicy, UnitKind};
use crate::runtime::ExitInfo;
use crate::supervisor::UnitState;
use std::time::Duration;
use tokio::time::Instant;

impl Machine {
    /// The process ended by itself.
    pub(super) fn exited(&mut self, exit: ExitInfo, uptime: Duration) -> Step {
        let text = exit.to_string();
        self.set(|s| {
            s.pid = None;
            s.last_exit = Some(text.clone());
        });
        if exit.success() {
            if self.unit.kind == UnitKind::Oneshot {
                self.event("completed".into());
                self.set(|s| {
                    s.state = UnitState::Completed;
                    s.health = None;
                    s.reason = None;
                });
                return Step::Idle(Rest::Completed);
            }
            if self.unit.restart != RestartPolicy::Always {
                self.event(format!(
                    "exited ({text}); restart = on-failure: not restarted"
                ));
                self.set(|s| {
                    s.state = UnitState::Stopped;
                    s.health = None;
                    s.reason = Some(format!("exited ({text})"));
                });
                return Step::Idle(Rest::Stopped);
            }
        }
        self.failed(exit, uptime)
    }

    /// Accounts a failed start or run: crash loop → failed, else restart per policy.
    pub(super) fn failed(&mut self, exit: ExitInfo, uptime: Duration) -> Step {
        let text = exit.to_string();
        if let Some(reason) = self.give_up(&exit) {
            self.event(format!("failed: {reason}"));
            tracing::error!("unit {}: {reason}", self.unit.name);
            self.set(|s| {
                s.state = UnitState::Failed;
                s.pid = None;
                s.health = None;
                s.last_exit = Some(text.clone());
                s.reason = Some(reason);
            });
            return Step::Idle(Rest::Failed);
        }
        let delay = self.backoff.next(uptime);
        let reason = format!("{text}; restarting in {}", Dur(delay));
        self.event(reason.clone());
        self.set(|s| {
            s.state = UnitState::Backoff;
            s.pid = None;
            s.last_exit = Some(text.clone());
            s.restarts += 1;
            s.reason = Some(reason);
        });
        Step::Backoff(delay)
    }

    /// Records a failure in the crash-loop window; Some(reason) when the unit gives up.
    fn give_up(&mut self, exit: &ExitInfo) -> Option<String> {
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
        if self.failures.len() >= cl.failures as usize {
            Some(format!(
                "crash loop: {} failures within {}; last: {exit}; start it by hand after fixing",
                self.failures.len(),
                Dur(cl.window)
            ))
        } else if self.unit.restart == RestartPolicy::Never {
            Some(format!("{exit} (restart = never)"))
        } else {
            None
        }
    }
}
