//! The one place that decides what a command does to a unit: a pure function of the
//! phase the unit waits in and the event that woke it. The driver (`super`) executes the
//! [`Transition`] it returns and never decides by itself.
//!
//! The semantics follow systemd's job rules and s6-supervise's: a stop always wins and
//! never starts anything (stop during backoff: stopped, no start); a start is a no-op on a
//! unit that is already wanted up (pending, running); a start by hand forgets the
//! crash-loop history (like `systemctl reset-failed` then `start`); a restart of a unit
//! that is not up yet queues nothing (pending stays pending, backoff starts at once).
//! Commands that arrive while a unit is starting (prepare hook, spawn) wait until its
//! child exists, then meet the `running` row; commands that arrive while its child is
//! being stopped for a restart meet the `pending` row before anything starts again.
//!
//! | phase \ event     | Start                  | Stop                         | Restart                             | Reload                                   | Remove          | Closed         |
//! |-------------------|------------------------|------------------------------|-------------------------------------|------------------------------------------|-----------------|----------------|
//! | idle (stopped)    | reset → pending        | stay                         | log, reset → pending                | take definition, stay stopped            | end             | end            |
//! | idle (failed)     | reset → pending        | show stopped → idle(stopped) | log, reset → pending                | take definition, log, reset → pending    | end             | end            |
//! | idle (completed)  | reset → pending        | stay                         | log, reset → pending                | take definition, log, reset → pending    | end             | end            |
//! | pending           | stay                   | show stopped → idle(stopped) | stay                                | take definition, forget failures, stay   | end             | end            |
//! | backoff           | reset → pending (now)  | show stopped → idle(stopped) | log → pending (now)                 | take definition, log, forget → pending   | end             | end            |
//! | running / healthy | stay                   | stop child → idle(stopped)   | log, stop child, count → pending    | log, stop child, take def, count, forget → pending | stop child, end | stop child, end |
//!
//! "reset" is a start by hand: the crash-loop history and the backoff sequence are
//! forgotten. "forget" forgets the crash-loop history only (a new definition deserves a
//! fresh count). "count" adds one to the unit's restarts. Every command is acknowledged
//! after its transition was carried out (a stop once the process is gone).
//!
//! What is not a command is decided by the phase itself: `pending` starts when the
//! dependencies and gates allow it (or fails on a failing gate), `backoff` goes to
//! `pending` when its delay passed, and a run's end is accounted by the exit policy
//! (oneshot completed, restart policy, crash loop) in `super::exit`.

/// Where a unit waits for its next event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Not wanted up: stopped, failed or completed; only a command moves it.
    Idle(Rest),
    /// Wanted up, waiting for dependencies and start gates.
    Pending,
    /// Waiting out the restart delay after a failure.
    Backoff,
    /// The process runs (starting, running or healthy).
    Running,
}

/// Why a unit is idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rest {
    Stopped,
    Failed,
    Completed,
}

/// What woke the unit: a command, or the end of its command channel (daemon exiting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Start,
    Stop,
    Restart,
    Reload,
    Remove,
    Closed,
}

/// Where the unit goes after the transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Goto {
    /// Keep waiting in the same phase.
    Stay,
    /// Wanted up: wait for dependencies and gates, then start.
    Pending,
    /// Not wanted up.
    Idle(Rest),
    /// The unit's task ends.
    End,
}

/// The reason shown while the running child is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopNote {
    /// "stopped by hand".
    ByHand,
    /// The command's own reason ("restarted by hand", "reload: …").
    Command,
    /// "removed from the config".
    Removed,
    /// Keep whatever reason is shown (daemon exiting).
    Keep,
}

/// Status to show after the transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Show {
    /// Leave the status alone.
    Keep,
    /// `stopped`, reason "stopped by hand".
    StoppedByHand,
    /// The command's reason, and one more restart counted.
    CountedRestart,
}

/// What to do: the driver carries these out in field order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Transition {
    /// Write the command's reason to the unit's log.
    pub log: bool,
    /// Stop the running child first, showing this reason meanwhile.
    pub stop_child: Option<StopNote>,
    /// Take the definition the reload carries (when it carries one).
    pub take_definition: bool,
    /// Forget the crash-loop history.
    pub forget_failures: bool,
    /// Also restart the backoff sequence (a start by hand).
    pub reset_backoff: bool,
    pub show: Show,
    pub next: Goto,
}

impl Transition {
    const STAY: Transition = Transition {
        log: false,
        stop_child: None,
        take_definition: false,
        forget_failures: false,
        reset_backoff: false,
        show: Show::Keep,
        next: Goto::Stay,
    };
    const END: Transition = Transition {
        next: Goto::End,
        ..Self::STAY
    };
    const STOPPED_BY_HAND: Transition = Transition {
        show: Show::StoppedByHand,
        next: Goto::Idle(Rest::Stopped),
        ..Self::STAY
    };
    /// A start by hand: everything forgotten, wanted up.
    const START_BY_HAND: Transition = Transition {
        forget_failures: true,
        reset_backoff: true,
        next: Goto::Pending,
        ..Self::STAY
    };
}

/// The transition table (see the module doc): the only place that decides.
pub(crate) fn decide(phase: Phase, event: Event) -> Transition {
    use Event as E;
    use Phase as P;
    let t = Transition::STAY;
    match (phase, event) {
        (P::Running, E::Remove) => Transition {
            stop_child: Some(StopNote::Removed),
            ..Transition::END
        },
        (P::Running, E::Closed) => Transition {
            stop_child: Some(StopNote::Keep),
            ..Transition::END
        },
        (_, E::Remove | E::Closed) => Transition::END,
        (P::Idle(_), E::Start) => Transition::START_BY_HAND,
        (P::Idle(Rest::Failed), E::Stop) => Transition::STOPPED_BY_HAND,
        (P::Idle(_), E::Stop) => t,
        (P::Idle(_), E::Restart) => Transition {
            log: true,
            ..Transition::START_BY_HAND
        },
        (P::Idle(Rest::Stopped), E::Reload) => Transition {
            take_definition: true,
            ..t
        },
        (P::Idle(_), E::Reload) => Transition {
            log: true,
            take_definition: true,
            ..Transition::START_BY_HAND
        },
        (P::Pending, E::Start | E::Restart) => t,
        (P::Pending, E::Stop) => Transition::STOPPED_BY_HAND,
        (P::Pending, E::Reload) => Transition {
            take_definition: true,
            forget_failures: true,
            ..t
        },
        (P::Backoff, E::Start) => Transition::START_BY_HAND,
        (P::Backoff, E::Stop) => Transition::STOPPED_BY_HAND,
        (P::Backoff, E::Restart) => Transition {
            log: true,
            next: Goto::Pending,
            ..t
        },
        (P::Backoff, E::Reload) => Transition {
            log: true,
            take_definition: true,
            forget_failures: true,
            next: Goto::Pending,
            ..t
        },
        (P::Running, E::Start) => t,
        (P::Running, E::Stop) => Transition {
            stop_child: Some(StopNote::ByHand),
            ..Transition::STOPPED_BY_HAND
        },
        (P::Running, E::Restart) => Transition {
            log: true,
            stop_child: Some(StopNote::Command),
            show: Show::CountedRestart,
            next: Goto::Pending,
            ..t
        },
        (P::Running, E::Reload) => Transition {
            log: true,
            stop_child: Some(StopNote::Command),
            take_definition: true,
            forget_failures: true,
            show: Show::CountedRestart,
            next: Goto::Pending,
            ..t
        },
    }
}
