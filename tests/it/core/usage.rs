//! Per-unit resource usage: the resident memory of a unit's whole process tree and its
//! CPU seconds, in `status`, `status --json` and the metrics.

use crate::support::stack::*;
use serde_json::Value;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

/// The value of `name{unit="UNIT"}` in the daemon's metrics.
fn metric(s: &Stack, name: &str, unit: &str) -> Option<f64> {
    let (code, body) = s.try_request("GET", "/v1/metrics")?;
    assert_eq!(code, 200);
    let prefix = format!("{name}{{unit=\"{unit}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// Polls `f` for up to `within`; panics with `what` and the daemon's stderr.
fn wait_for<T>(s: &Stack, what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if let Some(v) = f() {
            return v;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "timed out waiting for {what}:\n{}",
        tail(&s.stderr_text(), 40)
    );
}

#[test]
fn memory_of_the_tree_and_cpu_seconds_show_in_status_and_metrics() {
    let mut s = Stack::new("");
    // sh stays the unit's process (the trailing command keeps it from exec'ing): the
    // 64 MiB live in its child, so only a tree sum sees them. b'x'*n touches every page.
    let hog = s.script(
        "hog.sh",
        "/usr/bin/python3 -c \"b = b'x' * (64 << 20); import time; time.sleep(600)\"\necho done\n",
    );
    s.write_config(&format!(
        "[services.hog]\ncommand = [{hog:?}]\n\n[services.busy]\ncommand = [\"sh\", \"-c\", \"while :; do :; done\"]\n"
    ));
    s.start();
    s.wait_state("hog", "running", Duration::from_secs(15));
    s.wait_state("busy", "running", Duration::from_secs(15));

    let hog_json = wait_for(
        &s,
        "hog's memory in status",
        Duration::from_secs(20),
        || {
            let o = s.cli(&["status", "--json"]);
            let v: Value = serde_json::from_slice(&o.stdout).ok()?;
            let u = find(&v, "hog");
            (u["memory_bytes"].as_u64()? >= 64 * MIB).then_some(u)
        },
    );
    assert!(hog_json["cpu_seconds"].as_f64().is_some(), "{hog_json}");
    let mem = metric(&s, "prometheus_stack_unit_memory_bytes", "hog").unwrap();
    assert!(mem >= (64 * MIB) as f64, "metrics memory {mem}");

    let first = wait_for(&s, "busy's CPU seconds", Duration::from_secs(10), || {
        metric(&s, "prometheus_stack_unit_cpu_seconds_total", "busy").filter(|c| *c > 0.0)
    });
    let later = wait_for(
        &s,
        "busy's CPU seconds to grow",
        Duration::from_secs(15),
        || metric(&s, "prometheus_stack_unit_cpu_seconds_total", "busy").filter(|c| *c > first),
    );
    assert!(later > first);
    let busy = find(&s.status(), "busy");
    assert!(busy["cpu_percent"].as_f64().is_some(), "{busy}");

    let table = String::from_utf8_lossy(&s.cli(&["status"]).stdout).into_owned();
    let header = table.lines().next().unwrap_or_default();
    assert!(header.contains("CPU") && header.contains("MEM"), "{table}");
    let hog_line = table.lines().find(|l| l.starts_with("hog")).unwrap();
    assert!(hog_line.contains("MiB"), "{table}");
}
