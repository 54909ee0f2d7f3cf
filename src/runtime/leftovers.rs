//! What survives a SIGKILL of the daemon, and how the next `run` cleans it up.
//!
//! Guarantee: when the daemon is killed without a chance to stop its units (SIGKILL, OOM
//! kill, crash), the next `run` with the same runtime dir kills (SIGKILL) every process
//! group it had started that is still alive, before it starts anything. Each group is
//! recorded in `RUNTIME_DIR/process-groups` as `PGID STARTTIME UNIT`, rewritten whenever a
//! group starts or is gone. A recorded group is only killed when its leader still runs
//! with the recorded start time (so a reused pid is never hit), or, when the leader has
//! exited, only those members of the group that started after it. Containers are the
//! podman runtime's business (`podman::remove_leftovers`).

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

struct Record {
    file: PathBuf,
    groups: BTreeMap<u32, (u64, String)>,
}

static RECORD: OnceLock<Mutex<Record>> = OnceLock::new();

/// File name of the record under the runtime dir.
pub const FILE: &str = "process-groups";

/// Starts recording groups in `runtime_dir`. Without it (library use) nothing is recorded.
pub fn init(runtime_dir: &Path) {
    let _ = RECORD.set(Mutex::new(Record {
        file: runtime_dir.join(FILE),
        groups: BTreeMap::new(),
    }));
}

/// Notes a new group led by `pid`.
pub(crate) fn add(pid: u32, unit: &str) {
    let Some(rec) = RECORD.get() else { return };
    let Some(st) = super::reaper::proc_stat(pid) else {
        return;
    };
    let mut r = rec.lock().unwrap_or_else(|e| e.into_inner());
    r.groups.insert(pid, (st.starttime, unit.to_string()));
    save(&r);
}

/// Forgets a group once it is empty.
pub(crate) fn remove(pgid: u32) {
    let Some(rec) = RECORD.get() else { return };
    let mut r = rec.lock().unwrap_or_else(|e| e.into_inner());
    if r.groups.remove(&pgid).is_some() {
        save(&r);
    }
}

fn save(r: &Record) {
    let mut text = String::new();
    for (pgid, (start, unit)) in &r.groups {
        text.push_str(&format!("{pgid} {start} {unit}\n"));
    }
    let tmp = r.file.with_extension("tmp");
    let ok = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .and_then(|_| std::fs::rename(&tmp, &r.file));
    if let Err(e) = ok {
        tracing::warn!(
            "cannot write {}: {e}; after a daemon crash leftovers may survive",
            r.file.display()
        );
    }
}

/// Kills the groups a previous daemon recorded in `runtime_dir` and left running.
/// Returns one line per group killed.
pub fn kill_recorded(runtime_dir: &Path) -> Vec<String> {
    let file = runtime_dir.join(FILE);
    let Ok(text) = std::fs::read_to_string(&file) else {
        return Vec::new();
    };
    let mut killed = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(pgid), Some(start), Some(unit)) = (
            f.next().and_then(|s| s.parse::<u32>().ok()),
            f.next().and_then(|s| s.parse::<u64>().ok()),
            f.next(),
        ) else {
            continue;
        };
        let n = kill_group(pgid, start);
        if n > 0 {
            killed.push(format!(
                "unit {unit}: killed {n} leftover process(es) of group {pgid}"
            ));
        }
    }
    let _ = std::fs::remove_file(&file);
    killed
}

/// SIGKILLs the members of group `pgid` that belong to the recorded run; returns how many.
fn kill_group(pgid: u32, leader_start: u64) -> usize {
    let members = members_of(pgid);
    let leader_ok = match super::reaper::proc_stat(pgid) {
        Some(st) => st.starttime == leader_start && st.pgrp == pgid as i32,
        None => true,
    };
    if !leader_ok {
        return 0;
    }
    let ours: Vec<u32> = members
        .into_iter()
        .filter(|(_, start)| *start >= leader_start)
        .map(|(pid, _)| pid)
        .collect();
    if ours.is_empty() {
        return 0;
    }
    if super::reaper::proc_stat(pgid).is_some() {
        let _ = killpg(Pid::from_raw(pgid as i32), Signal::SIGKILL);
    } else {
        for pid in &ours {
            let _ = nix::sys::signal::kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
        }
    }
    ours.len()
}

/// Live (non-zombie) processes in group `pgid`, with their start times.
fn members_of(pgid: u32) -> Vec<(u32, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let st = super::reaper::proc_stat(pid)?;
            (st.pgrp == pgid as i32 && st.state != 'Z').then_some((pid, st.starttime))
        })
        .collect()
}
