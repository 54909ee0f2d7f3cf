//! The real daemon (`prometheus-stack run`) on a config file, watched through `status --json`.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A running daemon; SIGTERM and wait on drop.
pub struct Daemon {
    pub config: PathBuf,
    child: Child,
}

impl Daemon {
    /// `prometheus-stack --config FILE run`, output to `log`.
    pub fn start(config: &Path, log: &Path) -> Daemon {
        let out = std::fs::File::create(log).unwrap();
        let child = crate::common::stack_command(config)
            .arg("run")
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap();
        Daemon {
            config: config.to_path_buf(),
            child,
        }
    }

    /// Runs the CLI with `args` against this daemon's config.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        crate::common::stack_command(&self.config)
            .args(args)
            .output()
            .expect("run the cli")
    }

    /// `status --json` (None while the socket is not up).
    pub fn status(&self) -> Option<Value> {
        let out = self.cli(&["status", "--json"]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// One unit's entry of `status --json`; panics when the daemon or unit is absent.
    pub fn unit_status(&self, unit: &str) -> Value {
        let v = self.status().expect("status --json answers");
        crate::common::status_unit(&v, unit).unwrap_or_else(|| panic!("no unit {unit} in {v}"))
    }

    /// `status --json` → unit name → state (None while the socket is not up).
    pub fn states(&self) -> Option<Vec<(String, String, Option<String>)>> {
        let v = self.status()?;
        Some(
            v["units"]
                .as_array()?
                .iter()
                .map(|u| {
                    (
                        u["name"].as_str().unwrap_or("").to_string(),
                        u["state"].as_str().unwrap_or("").to_string(),
                        u["reason"].as_str().map(str::to_string),
                    )
                })
                .collect(),
        )
    }

    /// [`Daemon::wait_all_up`] as sorted `"unit state"` lines, for one `assert_eq!`.
    pub fn wait_all_up_sorted(&mut self, log: &Path, timeout: Duration) -> Vec<String> {
        let mut lines: Vec<String> = self
            .wait_all_up(log, timeout)
            .into_iter()
            .map(|(n, s)| format!("{n} {s}"))
            .collect();
        lines.sort();
        lines
    }

    /// Waits until every unit is healthy (longrun) or completed (oneshot); panics with the
    /// states and the daemon log when one fails or time runs out.
    pub fn wait_all_up(&mut self, log: &Path, timeout: Duration) -> Vec<(String, String)> {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "daemon exited ({st}):\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            if let Some(states) = self.states() {
                let failed = states.iter().any(|(_, s, _)| s == "failed");
                let up = !states.is_empty()
                    && states
                        .iter()
                        .all(|(_, s, _)| s == "healthy" || s == "completed");
                if up {
                    return states.into_iter().map(|(n, s, _)| (n, s)).collect();
                }
                if failed {
                    panic!(
                        "a unit failed: {states:#?}\n{}",
                        std::fs::read_to_string(log).unwrap_or_default()
                    );
                }
                last = Some(states);
            }
            if Instant::now() > deadline {
                panic!(
                    "not every unit came up: {last:#?}\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        crate::common::stop_child(
            &mut self.child,
            nix::sys::signal::Signal::SIGTERM,
            Duration::from_secs(20),
        );
    }
}
