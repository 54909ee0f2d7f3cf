//! Supervisor lifecycle with real processes: ordering behind health gates, parallel start,
//! backoff growth and reset, crash loop, health-failure restarts, oneshots.

use crate::support::stack::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(15);

#[test]
fn dependents_wait_for_health_and_independent_units_start_in_parallel() {
    let mut s = Stack::new(
        r#"
[services.db]
command = ["sh", "-c", "sleep 0.6; echo db ready; exec sleep 1000"]
health = { log = "db ready", interval = "100ms" }

[services.cache]
command = ["/usr/bin/python3", "-c", "import time,socket; time.sleep(0.6); s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', 20011)); s.listen(); time.sleep(1000)"]
health = { tcp = "127.0.0.1:20011", interval = "100ms" }

[services.migrate]
kind = "oneshot"
command = ["sh", "-c", "echo migrating; sleep 0.3"]
depends_on = ["db"]

[services.web]
command = ["/usr/bin/python3", "-m", "http.server", "20012", "--bind", "127.0.0.1"]
depends_on = { db = "healthy", cache = "healthy", migrate = "completed" }
health = { http = "http://127.0.0.1:20012/", interval = "100ms" }

[services.front]
command = ["sleep", "1000"]
depends_on = ["web"]
"#,
    );
    s.start();
    // While db starts, its dependents say what they wait for.
    let early = s.wait_until("migrate waiting", T, |st| {
        find(st, "migrate")["state"] == "pending"
            && find(st, "migrate")["reason"]
                .as_str()
                .is_some_and(|r| r.contains("waiting for db (healthy)"))
    });
    assert_eq!(find(&early, "front")["state"], "pending");
    let st = s.wait_state("front", "running", T);
    assert!(st["pid"].as_u64().is_some());
    let snap = s.status();
    let t = |n: &str, k: &str| find(&snap, n)[k].as_f64().unwrap();
    // db and cache started together: each started before the other was healthy (an order,
    // not a wall-clock gap, so a loaded machine cannot fail it).
    assert!(t("cache", "started_at") < t("db", "since"));
    assert!(t("db", "started_at") < t("cache", "since"));
    // migrate only after db was healthy; web only after migrate completed.
    assert!(t("migrate", "started_at") >= t("db", "started_at") + 0.5);
    assert_eq!(find(&snap, "migrate")["state"], "completed");
    assert_eq!(find(&snap, "migrate")["last_exit"], "exit 0");
    assert!(t("web", "started_at") >= t("migrate", "started_at") + 0.25);
    assert!(t("web", "started_at") >= t("cache", "started_at") + 0.5);
    assert_eq!(find(&snap, "web")["state"], "healthy");
    assert!(t("front", "started_at") >= t("web", "since") - 0.01);
    assert_eq!(snap["ready"], true);
    assert!(s.terminate().success());
}

/// Reads the start timestamps (seconds) a unit appended to a file.
fn starts(path: &std::path::Path) -> Vec<f64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .map(|ns| ns / 1e9)
        .collect()
}

#[test]
fn backoff_grows_is_capped_and_resets_after_a_long_run() {
    let mut s = Stack::new("");
    let script = s.script(
        "flaky.sh",
        r#"date +%s%N >> {dir}/starts
n=$(wc -l < {dir}/starts)
if [ "$n" -eq 6 ]; then sleep 1.2; fi
exit 1
"#,
    );
    s.write_config(&format!(
        r#"
[services.flaky]
command = ["{script}"]
restart = "always"
backoff = {{ initial = "100ms", max = "800ms", reset_after = "1s" }}
crash_loop = {{ failures = 100, window = "60s" }}
"#
    ));
    s.start();
    let file = s.path().join("starts");
    let end = std::time::Instant::now() + T;
    while starts(&file).len() < 8 && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = starts(&file);
    assert!(t.len() >= 8, "only {} starts", t.len());
    let gaps: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
    // Expected delays 100, 200, 400, 800, 800 (cap) ms, jittered down by up to 20%, plus
    // process start. Lower bounds are exact (a delay is never shorter); upper bounds are
    // generous, since a loaded machine only adds time.
    let expect = [0.1, 0.2, 0.4, 0.8, 0.8];
    for (i, e) in expect.iter().enumerate() {
        assert!(
            gaps[i] >= e * 0.75 && gaps[i] <= e + 1.5,
            "gap {i} = {:.3}s, expected about {e}s; gaps {gaps:?}",
            gaps[i]
        );
    }
    // It grows: the capped delays (at least 640 ms) exceed the first (at most 100 ms).
    assert!(gaps[3] >= 0.64 && gaps[4] >= 0.64, "gaps {gaps:?}");
    // Run 6 stayed up 1.2s > reset_after: the next delay starts again at 100ms. Without
    // the reset it would be the capped 800 ms, never under 640 ms after jitter.
    let after_long = gaps[6] - 1.2;
    assert!(
        after_long < 0.64,
        "after a long run the delay should reset to ~100ms, got {after_long:.3}s; gaps {gaps:?}"
    );
    let u = s.unit("flaky");
    assert!(u["restarts"].as_u64().unwrap() >= 7, "{u}");
    assert_eq!(u["last_exit"], "exit 1");
}

#[test]
fn crash_loop_fails_the_unit_with_a_reason_and_dependents_say_why_they_wait() {
    let mut s = Stack::new(
        r#"
[services.crashy]
command = ["sh", "-c", "echo boom >&2; exit 3"]
health = { tcp = "127.0.0.1:20021", interval = "100ms" }
backoff = { initial = "0s", max = "100ms" }
crash_loop = { failures = 3, window = "30s" }

[services.dependent]
command = ["sleep", "1000"]
depends_on = ["crashy"]
"#,
    );
    s.start();
    let u = s.wait_state("crashy", "failed", T);
    let reason = u["reason"].as_str().unwrap();
    assert!(
        reason.contains("crash loop: 3 failures within 30s") && reason.contains("exit 3"),
        "{reason}"
    );
    assert_eq!(u["restarts"], 2);
    assert_eq!(u["pid"], serde_json::Value::Null);
    let d = s.wait_until("dependent reason", T, |st| {
        find(st, "dependent")["reason"]
            .as_str()
            .is_some_and(|r| r.contains("crashy is failed"))
    });
    let d = find(&d, "dependent");
    assert_eq!(d["state"], "pending");
    assert!(d["reason"]
        .as_str()
        .unwrap()
        .starts_with("waiting for crashy (healthy)"));
    // Stays failed: no tight loop.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.unit("crashy")["restarts"], 2);
    // The reason is in the unit's log and the daemon's stderr.
    let logs = s.cli(&["logs", "-n", "20", "crashy"]);
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(
        text.contains("boom") && text.contains("crash loop"),
        "{text}"
    );
    assert!(s.stderr_text().contains("crashy | -- failed: crash loop"));
    // Started by hand it runs again (and fails again after 3 more tries).
    let out = s.cli(&["start", "crashy"]);
    assert!(out.status.success());
    s.wait_until("crashy retried", T, |st| {
        find(st, "crashy")["restarts"].as_u64() >= Some(3)
    });
    s.wait_state("crashy", "failed", T);
}

#[test]
fn failing_health_check_restarts_a_running_unit_and_it_recovers() {
    let mut s = Stack::new(
        r#"
[services.svc]
command = ["sleep", "1000"]
health = { exec = ["test", "-f", "{dir}/healthy"], interval = "100ms", retries = 2, start_period = "0s" }
backoff = { initial = "50ms", max = "100ms" }
crash_loop = { failures = 10, window = "60s" }
"#,
    );
    let flag = s.path().join("healthy");
    std::fs::write(&flag, "").unwrap();
    s.start();
    let first = s.wait_state("svc", "healthy", T);
    let pid1 = first["pid"].as_u64().unwrap() as u32;
    std::fs::remove_file(&flag).unwrap();
    s.wait_until("svc restarted", T, |st| {
        find(st, "svc")["restarts"].as_u64() >= Some(1)
    });
    assert!(!alive(pid1), "the unhealthy process must be stopped");
    let u = s.unit("svc");
    assert!(
        u["last_exit"]
            .as_str()
            .is_some_and(|e| e.contains("killed by SIGTERM") || e.contains("unhealthy")),
        "{u}"
    );
    std::fs::write(&flag, "").unwrap();
    let again = s.wait_state("svc", "healthy", T);
    assert_ne!(again["pid"].as_u64().unwrap() as u32, pid1);
    assert_eq!(again["health"], "healthy");
}

#[test]
fn oneshot_failure_respects_restart_policy_and_never_means_failed() {
    let mut s = Stack::new(
        r#"
[services.once]
kind = "oneshot"
command = ["sh", "-c", "exit 7"]

[services.retry]
kind = "oneshot"
restart = "on-failure"
command = ["sh", "-c", "echo x >> {dir}/tries; [ $(wc -l < {dir}/tries) -ge 3 ]"]
backoff = { initial = "50ms", max = "100ms" }

[services.after]
command = ["sleep", "1000"]
depends_on = ["retry"]
"#,
    );
    s.start();
    let once = s.wait_state("once", "failed", T);
    assert!(once["reason"]
        .as_str()
        .unwrap()
        .contains("exit 7 (restart = never)"));
    let r = s.wait_state("retry", "completed", T);
    assert_eq!(r["restarts"], 2);
    s.wait_state("after", "running", T);
}

#[test]
fn a_slow_health_probe_delays_neither_crash_detection_nor_stop() {
    let mut s = Stack::new(
        r#"
[services.slowprobe]
command = ["sh", "-c", "sleep 0.5; exit 4"]
health = { exec = ["sleep", "5"], timeout = "10s", interval = "100ms" }
restart = "never"

[services.stopme]
command = ["sleep", "1000"]
health = { exec = ["sleep", "5"], timeout = "10s", interval = "100ms" }
"#,
    );
    s.start();
    let t0 = std::time::Instant::now();
    let u = s.wait_state("slowprobe", "failed", T);
    assert_eq!(u["last_exit"], "exit 4");
    // Well before the 5 s probe would end: the probe is not waited for.
    assert!(
        t0.elapsed() < Duration::from_millis(4500),
        "{:?}",
        t0.elapsed()
    );
    s.wait_state("stopme", "running", T);
    std::thread::sleep(Duration::from_millis(300));
    let t0 = std::time::Instant::now();
    assert!(s.cli(&["stop", "stopme"]).status.success());
    assert!(
        t0.elapsed() < Duration::from_millis(4500),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(s.unit("stopme")["state"], "stopped");
    // The abandoned probe's process went with it.
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        s.tagged_processes().is_empty(),
        "{:?}",
        s.tagged_processes()
    );
}
