//! Child reaping for the whole daemon.
//!
//! The daemon is a child subreaper (`PR_SET_CHILD_SUBREAPER`), so every descendant a unit
//! leaves behind is re-parented to it and must be reaped here, or it stays a zombie and
//! keeps its process group "non-empty" forever.
//!
//! Design: unit processes are spawned with `std::process` (never `tokio::process`) and
//! registered here under a lock *before* they can be reaped; one tokio task, woken by
//! SIGCHLD (and a 1 s tick in case a signal is coalesced), hands each pass to the blocking
//! pool (it may scan `/proc`, which is no work for an async worker), waits for each registered pid
//! with `waitpid(pid, WNOHANG)` and hands the status to the unit's task through a oneshot.
//! It then reaps orphans, but only zombies whose session differs from the daemon's: every
//! unit runs in its own session (setsid), so those are unit descendants. A zombie in the
//! daemon's own session is a child some other code spawned (a `Command::output()`, a
//! `tokio::process` child) and is left to that code's own `waitpid(pid)`. A blanket
//! `waitpid(-1)` would steal those statuses (ECHILD in the other code), which is why this
//! reaper never uses one. Rule for the rest of the daemon: spawn anything that should live
//! in its own session through `runtime::process`.
//!
//! `PR_SET_PDEATHSIG` is not used: it fires when the *thread* that forked exits (DESIGN
//! §7) and tokio threads come and go. The guarantees are the group kill on stop and the
//! leftover record (`leftovers`) when the daemon itself is killed.

use super::ExitInfo;
use nix::errno::Errno;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};
use tokio::sync::oneshot;

struct Reaper {
    waiting: Mutex<HashMap<i32, oneshot::Sender<ExitInfo>>>,
    own_sid: i32,
}

static REAPER: OnceLock<Reaper> = OnceLock::new();

fn reaper() -> &'static Reaper {
    REAPER.get_or_init(|| {
        let r = Reaper {
            waiting: Mutex::new(HashMap::new()),
            own_sid: nix::unistd::getsid(None).map(|p| p.as_raw()).unwrap_or(-1),
        };
        start_task();
        r
    })
}

fn start_task() {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut sigchld = match signal(SignalKind::child()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cannot watch SIGCHLD ({e}); exits are seen within 1 s");
                return poll_only().await;
            }
        };
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = sigchld.recv() => {}
                _ = tick.tick() => {}
            }
            reap_off_workers().await;
        }
    });
}

async fn poll_only() {
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        reap_off_workers().await;
    }
}

/// Runs [`reap_now`] on the blocking pool: its `/proc` scan reads one file per process
/// of the host, which must not hold up an async worker.
pub(crate) async fn reap_off_workers() {
    if let Err(e) = tokio::task::spawn_blocking(reap_now).await {
        if e.is_panic() {
            tracing::error!("the reaper panicked: {e}");
        }
    }
}

/// Marks this process as a child subreaper so orphaned unit descendants come back to it.
pub fn become_subreaper() -> std::io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Holds the registry while a child is spawned, so it cannot be reaped as an orphan
/// before it is registered.
pub(crate) struct SpawnGuard(MutexGuard<'static, HashMap<i32, oneshot::Sender<ExitInfo>>>);

impl SpawnGuard {
    /// Registers a freshly spawned pid; its exit status arrives on the receiver.
    pub(crate) fn register(&mut self, pid: u32) -> oneshot::Receiver<ExitInfo> {
        let (tx, rx) = oneshot::channel();
        self.0.insert(pid as i32, tx);
        rx
    }
}

/// Locks the registry for a spawn (starts the reaper task on first use).
pub(crate) fn lock_for_spawn() -> SpawnGuard {
    SpawnGuard(reaper().waiting.lock().unwrap_or_else(|e| e.into_inner()))
}

fn exit_of(status: WaitStatus) -> Option<ExitInfo> {
    match status {
        WaitStatus::Exited(_, code) => Some(ExitInfo::code(code)),
        WaitStatus::Signaled(_, sig, _) => Some(ExitInfo::signal(sig as i32)),
        _ => None,
    }
}

/// Collects every status that is ready now. Called on SIGCHLD; safe to call any time.
pub fn reap_now() {
    let r = reaper();
    let mut waiting = r.waiting.lock().unwrap_or_else(|e| e.into_inner());
    let mut done = Vec::new();
    for pid in waiting.keys() {
        match waitpid(Pid::from_raw(*pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(st) => {
                if let Some(info) = exit_of(st) {
                    done.push((*pid, info));
                }
            }
            Err(Errno::ECHILD) => {
                done.push((*pid, ExitInfo::error("exit status lost (reaped elsewhere)")))
            }
            Err(_) => {}
        }
    }
    for (pid, info) in done {
        if let Some(tx) = waiting.remove(&pid) {
            let _ = tx.send(info);
        }
    }
    reap_orphans(r.own_sid, &mut waiting);
}

/// Reaps zombie children that are not ours to leave: those outside the daemon's session.
fn reap_orphans(own_sid: i32, registered: &mut HashMap<i32, oneshot::Sender<ExitInfo>>) {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    loop {
        let pid = match waitid(Id::All, flags) {
            Ok(st) => match st.pid() {
                Some(p) => p,
                None => return,
            },
            Err(_) => return,
        };
        if let Some(tx) = registered.remove(&pid.as_raw()) {
            // Became ready after the pass above.
            match waitpid(pid, Some(WaitPidFlag::WNOHANG))
                .ok()
                .and_then(exit_of)
            {
                Some(info) => {
                    let _ = tx.send(info);
                }
                None => {
                    registered.insert(pid.as_raw(), tx);
                    return;
                }
            }
            continue;
        }
        match proc_stat(pid.as_raw() as u32) {
            Some(st) if st.session != own_sid => {
                let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
            }
            // Someone else's child sits first in line: look for other zombies by hand.
            _ => return scan_proc(own_sid, registered),
        }
    }
}

fn scan_proc(own_sid: i32, registered: &HashMap<i32, oneshot::Sender<ExitInfo>>) {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if registered.contains_key(&(pid as i32)) {
            continue;
        }
        if let Some(st) = proc_stat(pid) {
            if st.ppid == me && st.state == 'Z' && st.session != own_sid {
                let _ = waitpid(Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG));
            }
        }
    }
}

/// Fields of `/proc/PID/stat` the daemon uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
    /// Clock ticks after boot; with the pid it identifies a process across pid reuse.
    pub starttime: u64,
}

/// Reads `/proc/PID/stat`; None when the process is gone.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<ProcStat> {
    // comm may contain spaces and ')'; fields resume after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        pgrp: f.get(2)?.parse().ok()?,
        session: f.get(3)?.parse().ok()?,
        starttime: f.get(19)?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_comm() {
        let s = "123 (a) b (c)) S 1 123 123 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 98765 0 0";
        let st = parse_stat(s).unwrap();
        assert_eq!(st.state, 'S');
        assert_eq!(st.ppid, 1);
        assert_eq!(st.pgrp, 123);
        assert_eq!(st.session, 123);
        assert_eq!(st.starttime, 98765);
    }

    #[test]
    fn own_stat_readable() {
        let st = proc_stat(std::process::id()).unwrap();
        assert!(st.starttime > 0);
    }
}
