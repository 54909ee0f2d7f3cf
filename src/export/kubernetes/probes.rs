//! A unit's health check as startup, readiness and liveness probes.
//!
//! The supervisor's meaning maps one to one: failures during `start_period` do not
//! count (startupProbe), an unhealthy unit gets no traffic (readiness: the proxy's 503)
//! and is restarted after `retries` failures (liveness), every `interval`.

use crate::plan::{Health, Probe, TaskSpec, Unit};
use serde_json::{json, Value};
use std::time::Duration;

/// The three probes of a container, or none when the unit has no translatable check.
pub fn probes(unit: &Unit) -> Option<[(&'static str, Value); 3]> {
    let health = unit.health.as_ref()?;
    let handler = handler(&health.probe, unit.port)?;
    let timing = |failures: u64| {
        let mut p = handler.clone();
        p["periodSeconds"] = json!(secs(health.interval));
        p["timeoutSeconds"] = json!(secs(health.timeout));
        p["failureThreshold"] = json!(failures.max(1));
        p
    };
    Some([
        ("startupProbe", timing(startup_failures(health))),
        ("readinessProbe", timing(u64::from(health.retries))),
        ("livenessProbe", timing(u64::from(health.retries))),
    ])
}

/// Attempts the startup probe gets: the start period in intervals.
fn startup_failures(h: &Health) -> u64 {
    let interval = h.interval.as_millis().max(1);
    (h.start_period.as_millis().div_ceil(interval) as u64).max(1)
}

/// Whole seconds, at least 1 (the API's minimum).
fn secs(d: Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

/// How the kubelet checks what the supervisor checks.
fn handler(probe: &Probe, main_port: Option<u16>) -> Option<Value> {
    match probe {
        Probe::Http { url, .. } => http_get(url),
        Probe::Tcp(addr) => {
            let port: u16 = addr.rsplit_once(':')?.1.parse().ok()?;
            Some(json!({"tcpSocket": {"port": port}}))
        }
        Probe::Exec(argv) => Some(json!({"exec": {"command": argv}})),
        // The kubelet cannot read logs: the port accepting connections is the next best.
        Probe::Log(_) => main_port.map(|p| json!({"tcpSocket": {"port": p}})),
        Probe::Task(TaskSpec::PostgresReady(pg)) => Some(json!({"exec": {"command": [
            "pg_isready", "-h", "127.0.0.1", "-p", pg.port.to_string(), "-U",
            crate::stack::postgres::SUPERUSER
        ]}})),
        Probe::Task(_) => None,
    }
}

/// `http://127.0.0.1:3001/api/status` → httpGet on the pod's port 3001. The kubelet
/// accepts 200–399; presets expecting one exact code (Logto's 204) are within it.
fn http_get(url: &str) -> Option<Value> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let port = match authority.rsplit_once(':') {
        Some((_, p)) => p.parse().ok()?,
        None if scheme == "https" => 443,
        None => 80,
    };
    Some(json!({"httpGet": {"path": path, "port": port, "scheme": scheme.to_ascii_uppercase()}}))
}
