//! Property test: no value in a config file makes `check` panic.
//!
//! Takes three real configs (the embedded default, the packaged production config and one
//! generic unit using every key), replaces random leaves with hostile values (huge and
//! negative numbers, overflowing durations and sizes, odd strings, wrong types) and builds
//! a plan from each: the answer must be a plan or a located error, never a panic. The seed
//! is fixed so a failure reproduces; `PSTEST_FUZZ_SEED`/`PSTEST_FUZZ_ROUNDS` explore more.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use toml::Value;

const GENERIC: &str = r#"
[stack]
name = "fuzz"
data_dir = "/tmp/pstest-fuzz"
domain = "example.test"

[control]
group = "root"

[proxy]
https = "127.0.0.1:18443"
http = "127.0.0.1:18080"
max_body = "10MiB"
upstream_timeout = "60s"
connect_timeout = "5s"
header_timeout = "10s"
max_connections = 100
tls = "internal"
hsts = "max-age=60"
trusted_proxies = ["10.0.0.0/8"]

[[proxy.site]]
host = "web.example.test"
routes = [{ path = "/", to = "web", max_body = "1MiB" }, { path = "/old", redirect = "/" }]

[metrics]
listen = "127.0.0.1:19464"

[gpu]
enabled = "auto"
interval = "5s"

[services.web]
command = ["/bin/sleep", "1000"]
port = 18081
ports = { admin = 18082 }
env = { A = "b" }
restart = "on-failure"
stop_signal = "SIGTERM"
stop_timeout = "10s"
depends_on = ["job"]
health = { http = "http://127.0.0.1:18081/", interval = "1s", timeout = "2s", retries = 3, start_period = "5s" }
backoff = { initial = "100ms", max = "30s", reset_after = "10s" }
crash_loop = { failures = 5, window = "1m" }
gpu = { min_free = "2GiB", max_used = "20GiB", grace = "30s", wait_timeout = "5m", devices = true }

[services.job]
kind = "oneshot"
command = ["/bin/true"]
health = { exec = ["/bin/true"], interval = "1s" }
"#;

/// Values that have broken parsers before, or could.
const HOSTILE_STRINGS: &[&str] = &[
    "",
    " ",
    "100000000000000000000s",
    "1e400s",
    "18446744073709551616",
    "99999999999999999999TiB",
    "-1s",
    "NaN",
    "inf",
    "0.0000000000001ms",
    "9223372036854775807d",
    "1.5.5s",
    "SIGNOPE",
    "999.999.999.999:99999",
    "127.0.0.1:0",
    "[::1]:65536",
    "/",
    "..",
    "../../etc/passwd",
    "${secret:}",
    "${secret:nope}",
    "${",
    "ünïcödé",
    "a\u{0}b",
    "host name with spaces",
    "*",
    "10.0.0.0/99",
    "on-failure",
    "oneshot",
    "podman",
];

fn hostile_value(rng: &mut StdRng) -> Value {
    match rng.gen_range(0..8) {
        0 => Value::Integer(rng.gen()),
        1 => {
            Value::Integer([i64::MIN, i64::MAX, -1, 0, 65536, u32::MAX as i64][rng.gen_range(0..6)])
        }
        2 => Value::Float([f64::MAX, -0.0, 1e300, f64::MIN_POSITIVE][rng.gen_range(0..4)]),
        3 => Value::Boolean(rng.gen()),
        4 => {
            let n: u64 = rng.gen();
            let unit = [
                "ms", "s", "m", "h", "d", "B", "KiB", "MiB", "GiB", "TiB", "TB",
            ];
            Value::String(format!("{n}{}", unit[rng.gen_range(0..unit.len())]))
        }
        5 => Value::Array(Vec::new()),
        6 => Value::String(format!(
            "{}",
            rng.gen::<f64>() * 10f64.powi(rng.gen_range(0..30))
        )),
        _ => Value::String(HOSTILE_STRINGS[rng.gen_range(0..HOSTILE_STRINGS.len())].into()),
    }
}

/// Every value in the tree, tables and arrays included (replacing a whole table is a test too).
fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Table(t) => t.values().map(count_nodes).sum(),
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Replaces the `n`th node (pre-order, root excluded) and returns its dotted path.
fn replace_nth(
    v: &mut Value,
    n: &mut usize,
    new: &Value,
    path: &mut Vec<String>,
) -> Option<String> {
    let children: Vec<(String, &mut Value)> = match v {
        Value::Table(t) => t.iter_mut().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(a) => a
            .iter_mut()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => return None,
    };
    for (key, child) in children {
        path.push(key);
        if *n == 0 {
            *child = new.clone();
            return Some(path.join("."));
        }
        *n -= 1;
        if let Some(done) = replace_nth(child, n, new, path) {
            return Some(done);
        }
        path.pop();
    }
    None
}

fn check_does_not_panic(name: &str, text: &str) {
    let Ok((cfg, src)) = super::load_str(name, None, text.to_string()) else {
        return;
    };
    let opts = crate::plan::BuildOptions { check_host: false };
    let _ = crate::plan::build(&cfg, &src, opts);
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn hostile_values_never_panic_check() {
    let seed = env_u64("PSTEST_FUZZ_SEED", 20261129);
    let rounds = env_u64("PSTEST_FUZZ_ROUNDS", 600);
    let mut rng = StdRng::seed_from_u64(seed);
    let bases = [
        ("default.toml", super::DEFAULT_CONFIG),
        ("stack.toml", include_str!("../../packaging/stack.toml")),
        ("generic.toml", GENERIC),
    ];
    for (name, text) in bases {
        let base: Value = toml::from_str(text).expect("base config parses");
        let nodes = count_nodes(&base) - 1;
        assert!(nodes > 10, "{name}: too few values to fuzz");
        for round in 0..rounds {
            let mut doc = base.clone();
            let mut changed = Vec::new();
            for _ in 0..rng.gen_range(1..4) {
                let value = hostile_value(&mut rng);
                let mut n = rng.gen_range(0..nodes);
                if let Some(path) = replace_nth(&mut doc, &mut n, &value, &mut Vec::new()) {
                    changed.push(format!("{path} = {value}"));
                }
            }
            let text = toml::to_string(&doc).expect("a toml value serializes");
            let outcome = std::panic::catch_unwind(|| check_does_not_panic(name, &text));
            assert!(
                outcome.is_ok(),
                "{name} round {round} (seed {seed}) panicked with: {}",
                changed.join("; ")
            );
        }
    }
}

#[test]
fn overflowing_duration_is_a_located_error() {
    let text = GENERIC.replace(
        "stop_timeout = \"10s\"",
        "stop_timeout = \"100000000000000000000s\"",
    );
    let err = match super::load_str("generic.toml", None, text) {
        Ok((cfg, src)) => {
            let opts = crate::plan::BuildOptions { check_host: false };
            crate::plan::build(&cfg, &src, opts).unwrap_err()
        }
        Err(e) => e,
    }
    .to_string();
    assert!(err.contains("services.web.stop_timeout"), "{err}");
    assert!(err.contains("too long"), "{err}");
    assert!(err.contains("generic.toml:"), "{err}");
}
