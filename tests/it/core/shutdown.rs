//! SIGTERM during a reload: shutdown starts at once, not after the reload finished.

use crate::support::stack::*;
use std::time::{Duration, Instant};

const UNIT: &str = r#"
[services.stubborn]
command = ["sh", "-c", "trap '' TERM; while :; do sleep 0.2; done"]
env = { ROUND = "ROUND_VALUE" }
stop_timeout = "8s"

[services.other]
command = ["sh", "-c", "trap '' TERM; while :; do sleep 0.2; done"]
stop_timeout = "8s"
"#;

#[test]
fn sigterm_during_a_reload_is_not_queued_behind_it() {
    let mut s = Stack::new(&UNIT.replace("ROUND_VALUE", "1"));
    s.start();
    s.wait_state("stubborn", "running", Duration::from_secs(15));
    s.wait_state("other", "running", Duration::from_secs(15));
    // The reload restarts `stubborn`, whose stop takes its whole stop_timeout (8 s);
    // `other`, untouched by the reload, also takes 8 s to stop at shutdown.
    s.write_config(&UNIT.replace("ROUND_VALUE", "2"));
    signal(s.daemon_pid(), libc::SIGHUP);
    s.wait_state("stubborn", "stopping", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    signal(s.daemon_pid(), libc::SIGTERM);
    // Shutdown starts at once: `other` is stopped while the reload still stops
    // `stubborn`. Queued behind the reload, `other` would get its SIGTERM only after
    // the reload's 8 s, and stop 8 s later (16 s).
    s.wait_state("other", "stopped", Duration::from_secs(11));
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(11),
        "other stopped {took:?} after SIGTERM:\n{}",
        tail(&s.stderr_text(), 30)
    );
    let mut daemon = s.daemon.take().unwrap();
    let status = wait_child(&mut daemon.child, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("daemon still running:\n{}", s.stderr_text()));
    assert!(status.success(), "{status}");
}
