//! Helpers shared by every area's tests (each area's own helpers are the submodules):
//! where tests/setup.sh put the test dependencies, the binary under test, units in status
//! snapshots, stopping the processes a test started, the shared runtime.
#![allow(dead_code)]

pub mod daemon;
pub mod gpu;
pub mod http;
pub mod logto;
pub mod objects;
pub mod pg;
pub mod podman;
pub mod proxy;
pub mod stack;

use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Where tests/setup.sh installs test dependencies (`PSTEST_DEPS`).
pub fn deps() -> PathBuf {
    PathBuf::from(
        std::env::var("PSTEST_DEPS").unwrap_or_else(|_| "/opt/prometheus-stack-test".into()),
    )
}

/// `prometheus-stack --config CONFIG` (the binary under test): add `run` or a CLI command.
pub fn stack_command(config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_prometheus-stack"));
    c.arg("--config").arg(config);
    c
}

/// The unit `name` in a daemon status snapshot (`status --json`, `/v1/status`).
pub fn status_unit(status: &serde_json::Value, name: &str) -> Option<serde_json::Value> {
    status["units"]
        .as_array()?
        .iter()
        .find(|u| u["name"] == name)
        .cloned()
}

/// Polls `f` every 50 ms for up to `within` until it returns Some.
pub fn poll_until<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `sig` to `child` and waits up to `within` for it to exit; true when it did.
pub fn signal_and_wait(child: &mut Child, sig: Signal, within: Duration) -> bool {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig);
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// [`signal_and_wait`], then SIGKILL (and reap) when it did not exit in time.
pub fn stop_child(child: &mut Child, sig: Signal, within: Duration) {
    if !signal_and_wait(child, sig, within) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// One runtime for every test that spawns units in-process (supervisor, podman runtime):
/// the daemon's child reaper is a task on the first runtime that spawns a unit, so
/// per-test runtimes (`#[tokio::test]`) would strand it for the rest of the binary.
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

/// For tests that measure the whole process (peak RSS): in the shared test binary other
/// tests' memory would count too, so the test re-runs itself alone in a child process.
/// Returns true in that child (go on measuring); in the parent it waits for the child,
/// fails if the child failed, and returns false (the parent has nothing left to do).
pub fn alone_in_own_process(test: &str) -> bool {
    const MARK: &str = "PSTEST_ALONE";
    if std::env::var(MARK).as_deref() == Ok(test) {
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = std::process::Command::new(exe)
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(MARK, test)
        .output()
        .expect("re-running the test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{test} alone in its own process failed:\n{text}"
    );
    assert!(
        text.contains("1 passed"),
        "{test} did not run in the child:\n{text}"
    );
    eprint!("{text}");
    false
}
