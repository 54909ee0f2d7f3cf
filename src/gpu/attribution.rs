//! Which unit owns a GPU process: walk the process's parents up to a unit's main pid
//! (native units) or to its container's init process (podman units).
//!
//! Runs on the poller's thread: it reads /proc and may call `podman inspect`, both blocking.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A unit as attribution needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitProc {
    pub name: String,
    /// Main pid of the unit's process (for podman units: the `podman run` client).
    pub pid: Option<u32>,
    /// Container name of a podman unit.
    pub container: Option<String>,
}

/// Gives the current units and their pids (the supervisor's snapshot in the daemon).
pub trait UnitPids: Send + Sync + 'static {
    /// Every unit that may own processes now.
    fn unit_pids(&self) -> Vec<UnitProc>;
}

impl UnitPids for Vec<UnitProc> {
    fn unit_pids(&self) -> Vec<UnitProc> {
        self.clone()
    }
}

/// Parent pid of `pid` from `/proc/PID/stat` (None when the process is gone).
pub fn parent_of(proc_root: &std::path::Path, pid: u32) -> Option<u32> {
    stat_ids(proc_root, pid).map(|(ppid, _)| ppid)
}

/// (parent pid, process group) of `pid` from `/proc/PID/stat`.
fn stat_ids(proc_root: &std::path::Path, pid: u32) -> Option<(u32, u32)> {
    let stat = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    // The command name is in parentheses and may itself contain ") ": parse after the last one.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let _state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((ppid, pgrp))
}

/// Maps GPU pids to units; keeps the container init pids it looked up between passes.
pub struct Attributor {
    proc_root: PathBuf,
    podman: String,
    /// container name → (unit main pid when inspected, container init pid).
    containers: HashMap<String, (Option<u32>, u32)>,
    /// Warnings from the last pass (e.g. podman inspect failed), one line each.
    pub warnings: Vec<String>,
}

impl Default for Attributor {
    fn default() -> Self {
        Attributor::new("/proc", "podman")
    }
}

impl Attributor {
    /// An attributor reading `proc_root` and calling `podman` for containers.
    pub fn new(proc_root: impl Into<PathBuf>, podman: impl Into<String>) -> Self {
        Attributor {
            proc_root: proc_root.into(),
            podman: podman.into(),
            containers: HashMap::new(),
            warnings: Vec::new(),
        }
    }

    /// For each pid, the unit that owns it (if any).
    pub fn attribute(&mut self, units: &[UnitProc], pids: &[u32]) -> HashMap<u32, String> {
        self.warnings.clear();
        let mut roots: HashMap<u32, &str> = HashMap::new();
        for u in units {
            if let Some(p) = u.pid {
                roots.insert(p, &u.name);
            }
        }
        let mut out = HashMap::new();
        let mut pending: Vec<u32> = Vec::new();
        for &pid in pids {
            match self.owner(&roots, pid) {
                Some(unit) => {
                    out.insert(pid, unit.to_string());
                }
                None => pending.push(pid),
            }
        }
        // Container processes descend from conmon, not from the unit's `podman run`
        // client, so they need the container's own init pid; only look it up when needed.
        if !pending.is_empty() {
            for u in units.iter().filter(|u| u.container.is_some()) {
                if let Some(cpid) = self.container_pid(u) {
                    roots.insert(cpid, &u.name);
                }
            }
            for pid in pending {
                if let Some(unit) = self.owner(&roots, pid) {
                    out.insert(pid, unit.to_string());
                }
            }
        }
        out
    }

    fn owner<'a>(&self, roots: &HashMap<u32, &'a str>, pid: u32) -> Option<&'a str> {
        let mut cur = pid;
        // Each unit runs in its own process group led by its main pid: a process that
        // double-forked away from its parents (reparented to us, the subreaper) still
        // carries the group.
        let group = stat_ids(&self.proc_root, pid).map(|(_, g)| g);
        // Bounded: a pid chain cannot be longer than the pid space, but /proc can change
        // under us, so never loop forever.
        for _ in 0..4096 {
            if let Some(u) = roots.get(&cur) {
                return Some(u);
            }
            match parent_of(&self.proc_root, cur) {
                Some(p) if p > 1 && p != cur => cur = p,
                _ => break,
            }
        }
        group.and_then(|g| roots.get(&g).copied())
    }

    fn container_pid(&mut self, u: &UnitProc) -> Option<u32> {
        let name = u.container.as_deref()?;
        if let Some(&(main, cpid)) = self.containers.get(name) {
            let alive = self.proc_root.join(cpid.to_string()).exists();
            if main == u.pid && alive {
                return Some(cpid);
            }
        }
        match inspect_pid(&self.podman, name) {
            Ok(0) => None,
            Ok(cpid) => {
                self.containers.insert(name.to_string(), (u.pid, cpid));
                Some(cpid)
            }
            Err(e) => {
                self.warnings.push(format!(
                    "unit {}: cannot attribute GPU processes: {e}",
                    u.name
                ));
                None
            }
        }
    }
}

/// `podman inspect --format {{.State.Pid}} NAME`, with a timeout so a hung podman never
/// stalls the poller for long.
fn inspect_pid(podman: &str, name: &str) -> Result<u32, String> {
    let mut child = Command::new(podman)
        .args(["inspect", "--format", "{{.State.Pid}}", name])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{podman} inspect`: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("`{podman} inspect {name}` took longer than 10s"));
            }
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("`{podman} inspect {name}`: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "`{podman} inspect {name}` failed: {}",
            err.lines().next().unwrap_or("").trim()
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| format!("`{podman} inspect {name}` printed no pid"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn a_grandchild_belongs_to_the_unit_of_its_ancestor() {
        // sh → sleep: the sleep's parent chain reaches the shell, which is the unit's pid.
        let mut sh = Command::new("sh")
            .args(["-c", "sleep 30 & echo $!; wait"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(sh.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let sleep_pid: u32 = line.trim().parse().unwrap();
        let units = vec![
            UnitProc {
                name: "model".into(),
                pid: Some(sh.id()),
                container: None,
            },
            UnitProc {
                name: "other".into(),
                pid: Some(std::process::id()),
                container: None,
            },
        ];
        let mut a = Attributor::default();
        let got = a.attribute(&units, &[sleep_pid, 999_999_999]);
        assert_eq!(got.get(&sleep_pid).map(String::as_str), Some("model"));
        assert!(!got.contains_key(&999_999_999));
        let _ = Command::new("kill").arg(sleep_pid.to_string()).status();
        let _ = sh.wait();
    }

    #[test]
    fn a_process_reparented_away_is_found_by_its_process_group() {
        let dir = tempfile::tempdir().unwrap();
        // 50 was started by unit pid 40 (its group), then double-forked: parent is now 1.
        for (pid, stat) in [("50", "50 (w) S 1 40 40 0"), ("40", "40 (sh) S 1 40 40 0")] {
            std::fs::create_dir(dir.path().join(pid)).unwrap();
            std::fs::write(dir.path().join(pid).join("stat"), stat).unwrap();
        }
        let units = vec![UnitProc {
            name: "model".into(),
            pid: Some(40),
            container: None,
        }];
        let mut a = Attributor::new(dir.path(), "podman");
        assert_eq!(
            a.attribute(&units, &[50]).get(&50).map(String::as_str),
            Some("model")
        );
    }

    #[test]
    fn stat_with_parentheses_in_the_name_parses() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("42")).unwrap();
        std::fs::write(dir.path().join("42/stat"), "42 (a) b (c) S 7 42 42 0").unwrap();
        assert_eq!(parent_of(dir.path(), 42), Some(7));
        assert_eq!(parent_of(dir.path(), 43), None);
    }
}
