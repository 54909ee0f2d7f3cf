//! Helpers for the core tests: a temp stack dir, the real daemon binary, status polling
//! over the real control socket, and process inspection through /proc.
#![allow(dead_code)]

use super::daemon::{DaemonBuilder, TestDaemon};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_prometheus-stack")
}

/// Absolute python3 (works for other users too, unlike pyenv shims).
pub const PY: &str = "/usr/bin/python3";

/// A temp dir with a config, and optionally a running daemon.
pub struct Stack {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub stderr: PathBuf,
    pub daemon: Option<TestDaemon>,
    /// Unique text put into every unit's environment, to find their processes.
    pub tag: String,
}

impl Stack {
    /// A stack whose config is `[stack]`+`[control]` pointing into the temp dir, then `units`.
    /// `{dir}` in `units` is replaced by the temp dir, `{tag}` by the stack's tag.
    pub fn new(units: &str) -> Stack {
        let dir = tempfile::tempdir().expect("tempdir");
        // Units may run as other users (nobody): let them through the 0700 temp dir.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let tag = format!(
            "pstest-{}-{}",
            std::process::id(),
            dir.path().file_name().unwrap().to_string_lossy()
        );
        let s = Stack {
            config: dir.path().join("stack.toml"),
            socket: dir.path().join("control.sock"),
            stderr: dir.path().join("daemon.stderr"),
            dir,
            daemon: None,
            tag,
        };
        s.write_config(units);
        s
    }

    /// The temp dir.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces `{dir}` and `{tag}`.
    pub fn expand(&self, text: &str) -> String {
        text.replace("{dir}", &self.path().display().to_string())
            .replace("{tag}", &self.tag)
    }

    /// Rewrites the config (same header).
    pub fn write_config(&self, units: &str) {
        let text = format!(
            "[stack]\nname = \"t\"\ndata_dir = \"{dir}/data\"\n\n[control]\nsocket = \"{sock}\"\n\n{units}",
            dir = self.path().display(),
            sock = self.socket.display(),
            units = self.expand(units)
        );
        std::fs::write(&self.config, text).unwrap();
    }

    /// Writes an executable script into the temp dir and returns its path.
    pub fn script(&self, name: &str, body: &str) -> String {
        let p = self.path().join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{}", self.expand(body))).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        p.display().to_string()
    }

    /// The daemon's builder: clean environment plus the stack's tag, stdout to /dev/null,
    /// stderr to `daemon.stderr`, its own process group.
    pub fn daemon_builder(&self) -> DaemonBuilder {
        TestDaemon::builder(&self.config)
            .socket(&self.socket)
            .log(&self.stderr)
            .stdout(Path::new("/dev/null"))
            .env("PSTEST_TAG", &self.tag)
            .process_group()
    }

    /// A daemon command (see [`Stack::daemon_builder`]) for a test to adjust.
    pub fn daemon_command(&self) -> Command {
        self.daemon_builder().wired_command()
    }

    /// Starts the daemon and waits until its socket answers.
    pub fn start(&mut self) -> &mut Self {
        let cmd = self.daemon_command();
        self.start_with(cmd)
    }

    /// Starts the daemon from a prepared command and waits until its socket answers.
    pub fn start_with(&mut self, mut cmd: Command) -> &mut Self {
        let child = cmd.spawn().expect("spawn the daemon");
        let d = TestDaemon::adopt(child, &self.config, Some(&self.socket), &self.stderr);
        d.wait_ready(Duration::from_secs(15));
        self.daemon = Some(d);
        self
    }

    /// The running daemon.
    pub fn daemon(&self) -> &TestDaemon {
        self.daemon.as_ref().expect("daemon running")
    }

    /// The daemon's pid.
    pub fn daemon_pid(&self) -> u32 {
        self.daemon().pid()
    }

    /// Everything the daemon wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stderr).unwrap_or_default()).into_owned()
    }

    /// Raw HTTP over the control socket; None when nobody answers.
    pub fn try_request(&self, method: &str, path: &str) -> Option<(u16, String)> {
        self.daemon.as_ref()?.request(method, path)
    }

    /// The daemon's snapshot.
    pub fn status(&self) -> Value {
        self.daemon()
            .status()
            .unwrap_or_else(|| panic!("no status:\n{}", self.stderr_text()))
    }

    /// One unit's status.
    pub fn unit(&self, name: &str) -> Value {
        let s = self.status();
        crate::support::status_unit(&s, name).unwrap_or_else(|| panic!("no unit {name} in {s}"))
    }

    /// Polls the snapshot until `f` holds; panics with the last snapshot and stderr.
    pub fn wait_until(&self, what: &str, timeout: Duration, f: impl Fn(&Value) -> bool) -> Value {
        self.daemon().wait_until(what, timeout, f)
    }

    /// Waits until `unit` is in `state`; returns its status.
    pub fn wait_state(&self, unit: &str, state: &str, timeout: Duration) -> Value {
        self.daemon().wait_state(unit, state, timeout)
    }

    /// Runs the CLI against this stack's config.
    pub fn cli(&self, args: &[&str]) -> Output {
        crate::support::stack_command(&self.config)
            .args(args)
            .env_remove("PROMETHEUS_STACK_CONFIG")
            .output()
            .expect("run the CLI")
    }

    /// SIGTERM to the daemon; waits for its exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.daemon.take().expect("daemon running").terminate()
    }

    /// SIGKILL to the daemon (its units are left behind).
    pub fn kill9(&mut self) {
        self.daemon.take().expect("daemon running").kill9();
    }

    /// Live processes carrying this stack's tag in their environment.
    /// The daemon itself is not counted.
    pub fn tagged_processes(&self) -> Vec<u32> {
        let me = self.daemon.as_ref().map(|d| d.pid());
        let mut p = processes_with_env(&format!("PSTEST_TAG={}", self.tag));
        // The daemon's own helpers (its start-time `podman ps` for leftover containers)
        // inherit the tag too; they are not unit processes.
        p.retain(|x| Some(*x) != me && !is_podman_helper(*x));
        p
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // The daemon stops first (its Drop: SIGTERM, then SIGKILL), then whatever it left.
        self.daemon.take();
        for pid in self.tagged_processes() {
            signal(pid, libc::SIGKILL);
        }
    }
}

/// The unit `name` in a snapshot.
pub fn find(s: &Value, name: &str) -> Value {
    crate::support::status_unit(s, name).unwrap_or(Value::Null)
}

/// Waits for a child with a timeout.
pub fn wait_child(c: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if let Some(st) = c.try_wait().unwrap() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Sends a signal to a pid.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: plain kill(2).
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// Whether a pid is alive (not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s.rsplit(')').next().unwrap_or("").split_whitespace().next();
            state != Some("Z") && state != Some("X")
        }
        Err(_) => false,
    }
}

/// Fields of /proc/PID/stat after the comm: (ppid, pgrp, session).
pub fn ids(pid: u32) -> Option<(i32, i32, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = s.rsplit(')').next()?.split_whitespace().collect();
    Some((f[1].parse().ok()?, f[2].parse().ok()?, f[3].parse().ok()?))
}

/// Live processes whose environment contains `needle` (e.g. `KEY=value`).
/// podman and its helpers, run by the daemon itself rather than by a unit.
fn is_podman_helper(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| matches!(c.trim(), "podman" | "conmon"))
        .unwrap_or(false)
}

pub fn processes_with_env(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) {
            if env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) && alive(pid) {
                out.push(pid);
            }
        }
    }
    out
}

/// Last `n` lines of a text.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Resident memory of a process in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
