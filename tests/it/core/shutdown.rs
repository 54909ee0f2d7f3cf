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
    // Shutdown starts at once: `other` and `stubborn` are SIGKILLed after their 8 s
    // stop_timeout and the daemon exits. Queued behind the reload, `other` would get its
    // SIGTERM only after the reload's 8 s, and the daemon would exit after about 16 s.
    // (Status polling would race the exit: the daemon is the thing that goes away.)
    let mut daemon = s.daemon.take().unwrap();
    let status = wait_child(&mut daemon.child, Duration::from_secs(13));
    let took = t.elapsed();
    let status = status.unwrap_or_else(|| {
        panic!(
            "daemon still running {took:?} after SIGTERM:\n{}",
            tail(&s.stderr_text(), 30)
        )
    });
    assert!(status.success(), "{status}");
    assert!(
        s.stderr_text().contains("all units stopped"),
        "{}",
        tail(&s.stderr_text(), 30)
    );
}
