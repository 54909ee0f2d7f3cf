//! The transition table row by row, and the machine on tokio's paused clock with a fake
//! child (no processes).

use super::child::fake::{Run, Script};
use super::child::Launcher;
use super::transition::{decide, Event, Goto, Phase, Rest, Show, StopNote, Transition};
use crate::plan::{BuildOptions, Plan};
use crate::runtime::ExitInfo;
use crate::secrets::SecretStore;
use crate::supervisor::{Handle, Supervisor, UnitState, UnitStatus};
use std::sync::Arc;
use std::time::Duration;

const ALL_PHASES: [Phase; 6] = [
    Phase::Idle(Rest::Stopped),
    Phase::Idle(Rest::Failed),
    Phase::Idle(Rest::Completed),
    Phase::Pending,
    Phase::Backoff,
    Phase::Running,
];

const STAY: Transition = Transition {
    log: false,
    stop_child: None,
    take_definition: false,
    forget_failures: false,
    reset_backoff: false,
    show: Show::Keep,
    next: Goto::Stay,
};

#[test]
fn only_running_stops_a_child() {
    for p in ALL_PHASES {
        for e in [
            Event::Start,
            Event::Stop,
            Event::Restart,
            Event::Reload,
            Event::Remove,
            Event::Closed,
        ] {
            let t = decide(p, e);
            assert_eq!(
                t.stop_child.is_some(),
                p == Phase::Running && e != Event::Start,
                "{p:?} {e:?}"
            );
        }
    }
}

#[test]
fn remove_and_closed_always_end() {
    for p in ALL_PHASES {
        assert_eq!(decide(p, Event::Remove).next, Goto::End, "{p:?}");
        assert_eq!(decide(p, Event::Closed).next, Goto::End, "{p:?}");
    }
    assert_eq!(
        decide(Phase::Running, Event::Remove).stop_child,
        Some(StopNote::Removed)
    );
    assert_eq!(
        decide(Phase::Running, Event::Closed).stop_child,
        Some(StopNote::Keep)
    );
}

#[test]
fn start_rows() {
    let by_hand = Transition {
        forget_failures: true,
        reset_backoff: true,
        next: Goto::Pending,
        ..STAY
    };
    for r in [Rest::Stopped, Rest::Failed, Rest::Completed] {
        assert_eq!(decide(Phase::Idle(r), Event::Start), by_hand, "{r:?}");
    }
    assert_eq!(decide(Phase::Backoff, Event::Start), by_hand);
    assert_eq!(decide(Phase::Pending, Event::Start), STAY);
    assert_eq!(decide(Phase::Running, Event::Start), STAY);
}

#[test]
fn stop_rows() {
    let stopped = Transition {
        show: Show::StoppedByHand,
        next: Goto::Idle(Rest::Stopped),
        ..STAY
    };
    assert_eq!(decide(Phase::Idle(Rest::Stopped), Event::Stop), STAY);
    assert_eq!(decide(Phase::Idle(Rest::Completed), Event::Stop), STAY);
    assert_eq!(decide(Phase::Idle(Rest::Failed), Event::Stop), stopped);
    assert_eq!(decide(Phase::Pending, Event::Stop), stopped);
    assert_eq!(decide(Phase::Backoff, Event::Stop), stopped);
    assert_eq!(
        decide(Phase::Running, Event::Stop),
        Transition {
            stop_child: Some(StopNote::ByHand),
            ..stopped
        }
    );
}

#[test]
fn restart_rows() {
    let by_hand = Transition {
        log: true,
        forget_failures: true,
        reset_backoff: true,
        next: Goto::Pending,
        ..STAY
    };
    for r in [Rest::Stopped, Rest::Failed, Rest::Completed] {
        assert_eq!(decide(Phase::Idle(r), Event::Restart), by_hand, "{r:?}");
    }
    assert_eq!(decide(Phase::Pending, Event::Restart), STAY);
    assert_eq!(
        decide(Phase::Backoff, Event::Restart),
        Transition {
            log: true,
            next: Goto::Pending,
            ..STAY
        }
    );
    assert_eq!(
        decide(Phase::Running, Event::Restart),
        Transition {
            log: true,
            stop_child: Some(StopNote::Command),
            show: Show::CountedRestart,
            next: Goto::Pending,
            ..STAY
        }
    );
}

#[test]
fn reload_rows() {
    assert_eq!(
        decide(Phase::Idle(Rest::Stopped), Event::Reload),
        Transition {
            take_definition: true,
            ..STAY
        }
    );
    let again = Transition {
        log: true,
        take_definition: true,
        forget_failures: true,
        reset_backoff: true,
        next: Goto::Pending,
        ..STAY
    };
    assert_eq!(decide(Phase::Idle(Rest::Failed), Event::Reload), again);
    assert_eq!(decide(Phase::Idle(Rest::Completed), Event::Reload), again);
    assert_eq!(
        decide(Phase::Pending, Event::Reload),
        Transition {
            take_definition: true,
            forget_failures: true,
            ..STAY
        }
    );
    assert_eq!(
        decide(Phase::Backoff, Event::Reload),
        Transition {
            log: true,
            take_definition: true,
            forget_failures: true,
            next: Goto::Pending,
            ..STAY
        }
    );
    assert_eq!(
        decide(Phase::Running, Event::Reload),
        Transition {
            log: true,
            stop_child: Some(StopNote::Command),
            take_definition: true,
            forget_failures: true,
            show: Show::CountedRestart,
            next: Goto::Pending,
            ..STAY
        }
    );
}

// ---- the machine, on the paused clock ----

fn plan(text: &str) -> Arc<Plan> {
    let (cfg, src) = crate::config::load_str("test.toml", None, text.to_string()).expect("config");
    Arc::new(crate::plan::build(&cfg, &src, BuildOptions { check_host: false }).expect("plan"))
}

fn start(text: &str, script: &Script) -> Handle {
    let dir = std::env::temp_dir().join(format!("ps-unit-test-{}", std::process::id()));
    Supervisor::start_with(
        plan(text),
        SecretStore::new(&dir),
        Vec::new(),
        Launcher::Fake(script.clone()),
    )
}

/// Lets the machine run until `name` satisfies `f` (advancing the paused clock), at most `max`.
async fn until(
    h: &Handle,
    name: &str,
    max: Duration,
    f: impl Fn(&UnitStatus) -> bool,
) -> UnitStatus {
    let end = tokio::time::Instant::now() + max;
    loop {
        let s = h.snapshot().unit(name).cloned().expect("unit");
        if f(&s) {
            return s;
        }
        assert!(tokio::time::Instant::now() < end, "timed out: {s:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn state(h: &Handle, name: &str, want: UnitState) -> UnitStatus {
    until(h, name, Duration::from_secs(120), |s| s.state == want).await
}

const FLAKY: &str = r#"
[services.a]
command = ["fake"]
backoff = { initial = "1s", max = "4s" }
crash_loop = { failures = 3, window = "60s" }
"#;

fn fail_after(ms: u64) -> Run {
    Run::For(Duration::from_millis(ms), ExitInfo::code(1))
}

#[tokio::test(start_paused = true)]
async fn crash_loop_fails_then_start_by_hand_resets_the_count() {
    let script = Script::new([
        fail_after(10),
        fail_after(10),
        fail_after(10),
        fail_after(10),
    ]);
    let h = start(FLAKY, &script);
    let s = state(&h, "a", UnitState::Failed).await;
    assert!(
        s.reason
            .as_deref()
            .unwrap()
            .contains("crash loop: 3 failures within 1m"),
        "{s:?}"
    );
    assert_eq!(s.restarts, 2);
    let starts = script.starts();
    assert_eq!(starts.len(), 3);
    // Backoff: about 1 s, then about 2 s (jittered down by up to 20%).
    let gap = |i: usize| (starts[i] - starts[i - 1]).as_millis();
    assert!((800..=1100).contains(&gap(1)), "{}", gap(1));
    assert!((1600..=2100).contains(&gap(2)), "{}", gap(2));
    // Start on failed forgets the crash loop: one failure is a backoff again, not failed.
    h.start("a").unwrap();
    let s = state(&h, "a", UnitState::Backoff).await;
    assert_eq!(script.starts().len(), 4);
    assert!(
        s.reason.as_deref().unwrap().contains("restarting in"),
        "{s:?}"
    );
    state(&h, "a", UnitState::Running).await;
}

#[tokio::test(start_paused = true)]
async fn stop_during_backoff_stops_without_starting() {
    let script = Script::new([fail_after(10)]);
    let h = start(FLAKY, &script);
    state(&h, "a", UnitState::Backoff).await;
    h.stop("a").await.unwrap();
    let s = h.snapshot().unit("a").cloned().unwrap();
    assert_eq!(s.state, UnitState::Stopped);
    assert_eq!(s.reason.as_deref(), Some("stopped by hand"));
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(script.starts().len(), 1);
    assert_eq!(h.snapshot().unit("a").unwrap().state, UnitState::Stopped);
}

#[tokio::test(start_paused = true)]
async fn restart_while_pending_stays_pending() {
    let script = Script::new([]);
    let text = r#"
[services.dep]
kind = "oneshot"
command = ["fake"]
[services.a]
command = ["fake"]
depends_on = { dep = "completed" }
"#;
    let h = start(text, &script);
    state(&h, "a", UnitState::Pending).await;
    h.restart("a").await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let s = h.snapshot().unit("a").cloned().unwrap();
    assert_eq!(s.state, UnitState::Pending);
    assert_eq!(s.restarts, 0);
    // Only dep ever started.
    assert_eq!(script.starts().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn restart_while_running_counts_and_starts_again() {
    let script = Script::new([]);
    let h = start(FLAKY, &script);
    state(&h, "a", UnitState::Running).await;
    h.restart("a").await.unwrap();
    let s = state(&h, "a", UnitState::Running).await;
    assert_eq!(s.restarts, 1);
    assert_eq!(script.starts().len(), 2);
    assert!(h
        .logs("a", 10)
        .unwrap()
        .iter()
        .any(|l| l.contains("restart: restarted by hand")));
}

#[tokio::test(start_paused = true)]
async fn oneshot_completes_and_stop_keeps_it_completed() {
    let script = Script::new([Run::For(Duration::from_millis(50), ExitInfo::code(0))]);
    let h = start(
        "[services.a]\nkind = \"oneshot\"\ncommand = [\"fake\"]\n",
        &script,
    );
    state(&h, "a", UnitState::Completed).await;
    h.stop("a").await.unwrap();
    assert_eq!(h.snapshot().unit("a").unwrap().state, UnitState::Completed);
}

#[tokio::test(start_paused = true)]
async fn a_spawn_error_counts_as_a_failure() {
    let script = Script::new([Run::SpawnFails("no such program".into())]);
    let h = start(FLAKY, &script);
    let s = state(&h, "a", UnitState::Backoff).await;
    assert_eq!(s.last_exit.as_deref(), Some("no such program"));
    state(&h, "a", UnitState::Running).await;
}

#[tokio::test(start_paused = true)]
async fn a_panicking_unit_task_shows_failed_with_the_message_and_can_be_started_again() {
    let script = Script::new([Run::Panic("boom in the machine".into())]);
    let h = start(FLAKY, &script);
    let s = state(&h, "a", UnitState::Failed).await;
    let reason = s.reason.unwrap();
    assert!(reason.contains("panicked: boom in the machine"), "{reason}");
    h.start("a").unwrap();
    state(&h, "a", UnitState::Running).await;
    h.stop("a").await.unwrap();
    assert_eq!(h.snapshot().unit("a").unwrap().state, UnitState::Stopped);
}

#[tokio::test(start_paused = true)]
async fn reload_during_backoff_starts_at_once_and_forgets_the_crash_loop() {
    let script = Script::new([fail_after(10), fail_after(10), fail_after(10)]);
    let h = start(FLAKY, &script);
    until(&h, "a", Duration::from_secs(60), |s| {
        s.state == UnitState::Backoff && s.restarts == 2
    })
    .await;
    let changed = FLAKY.replace("initial = \"1s\"", "initial = \"2s\"");
    let at = tokio::time::Instant::now();
    let report = h.reload(plan(&changed)).await.unwrap();
    assert_eq!(report.restarted, vec!["a".to_string()]);
    // The third failure is the first of a fresh count: backoff again, not failed.
    let s = until(&h, "a", Duration::from_secs(60), |s| s.restarts == 3).await;
    assert_eq!(s.state, UnitState::Backoff, "{s:?}");
    let starts = script.starts();
    assert_eq!(starts.len(), 3);
    assert!(starts[2] - at < Duration::from_millis(100));
    assert!(h
        .logs("a", 20)
        .unwrap()
        .iter()
        .any(|l| l.contains("reload: definition changed")));
}
