//! A native child process: its own session and process group, the unit's user, env and
//! working directory, stdout/stderr captured line by line into the unit's log.
//!
//! Stopping means the whole group: the stop signal goes to the group, and the stop is only
//! over once no process of the group is left (a leader that exits early can leave
//! children behind); after the timeout the group gets SIGKILL.

use super::{leftovers, reaper, ExitInfo, LogSink, RuntimeError};
use crate::logsink::MAX_LINE;
use crate::plan::Unit;
use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::{Gid, Pid, Uid};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// What to run and as whom.
#[derive(Debug, Clone, Default)]
pub struct ProcessSpec {
    /// Unit name (for errors, logs and the leftover record).
    pub unit: String,
    pub argv: Vec<String>,
    /// Set on top of the daemon's inherited environment.
    pub env: BTreeMap<String, String>,
    pub user: Option<String>,
    /// Defaults to the user's primary group.
    pub group: Option<String>,
    pub workdir: Option<PathBuf>,
}

impl ProcessSpec {
    /// The spec for a process unit with its resolved environment.
    pub fn for_unit(
        unit: &Unit,
        argv: Vec<String>,
        env: BTreeMap<String, String>,
    ) -> Result<Self, RuntimeError> {
        Ok(ProcessSpec {
            unit: unit.name.clone(),
            argv,
            env,
            user: unit.user.clone(),
            group: unit.group.clone(),
            workdir: unit.workdir.clone(),
        })
    }
}

struct Ids {
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
    name: String,
    home: PathBuf,
}

fn resolve_ids(spec: &ProcessSpec) -> Result<Option<Ids>, RuntimeError> {
    let Some(user) = &spec.user else {
        if let Some(g) = &spec.group {
            let gr = nix::unistd::Group::from_name(g)
                .ok()
                .flatten()
                .ok_or_else(|| RuntimeError::UnknownGroup {
                    unit: spec.unit.clone(),
                    group: g.clone(),
                })?;
            return Ok(Some(Ids {
                uid: Uid::current(),
                gid: gr.gid,
                groups: vec![gr.gid],
                name: String::new(),
                home: PathBuf::new(),
            }));
        }
        return Ok(None);
    };
    let u = nix::unistd::User::from_name(user)
        .ok()
        .flatten()
        .ok_or_else(|| RuntimeError::UnknownUser {
            unit: spec.unit.clone(),
            user: user.clone(),
        })?;
    let gid = match &spec.group {
        Some(g) => {
            nix::unistd::Group::from_name(g)
                .ok()
                .flatten()
                .ok_or_else(|| RuntimeError::UnknownGroup {
                    unit: spec.unit.clone(),
                    group: g.clone(),
                })?
                .gid
        }
        None => u.gid,
    };
    // Looked up before fork: NSS is not safe to call between fork and exec.
    let cname = CString::new(user.as_str()).map_err(|_| RuntimeError::UnknownUser {
        unit: spec.unit.clone(),
        user: user.clone(),
    })?;
    let groups = nix::unistd::getgrouplist(&cname, gid).unwrap_or_else(|_| vec![gid]);
    Ok(Some(Ids {
        uid: u.uid,
        gid,
        groups,
        name: u.name,
        home: u.dir,
    }))
}

/// The command with the unit's argv, environment (the daemon's inheritable variables,
/// the user's identity, then the unit's own) and working directory; output piped.
fn command_for(spec: &ProcessSpec, program: &str, ids: Option<&Ids>) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    cmd.args(&spec.argv[1..]);
    cmd.env_clear();
    for (k, v) in std::env::vars_os() {
        if k.to_str().is_some_and(super::inherited) {
            cmd.env(k, v);
        }
    }
    if let Some(ids) = ids {
        if !ids.name.is_empty() {
            cmd.env("USER", &ids.name)
                .env("LOGNAME", &ids.name)
                .env("HOME", &ids.home);
        }
    }
    cmd.envs(&spec.env);
    if let Some(w) = &spec.workdir {
        cmd.current_dir(w);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Makes the child a session leader (its own process group) running as `ids`.
fn in_own_session_as(cmd: &mut std::process::Command, ids: Option<&Ids>) {
    let (uid, gid, groups) = match ids {
        Some(i) => (Some(i.uid), Some(i.gid), i.groups.clone()),
        None => (None, None, Vec::new()),
    };
    // SAFETY: only async-signal-safe syscalls (setsid, setgroups, setgid, setuid)
    // run between fork and exec; everything they need was computed before the fork.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setsid()?;
            if let Some(gid) = gid {
                if Uid::effective().is_root() {
                    nix::unistd::setgroups(&groups)?;
                }
                nix::unistd::setgid(gid)?;
            }
            if let Some(uid) = uid {
                if uid != Uid::effective() {
                    nix::unistd::setuid(uid)?;
                }
            }
            Ok(())
        });
    }
}

/// A running native child and its process group.
pub struct ProcessChild {
    unit: String,
    pid: u32,
    exit_rx: Option<oneshot::Receiver<ExitInfo>>,
    exit: Option<ExitInfo>,
    readers: Vec<JoinHandle<()>>,
    group_gone: bool,
}

impl ProcessChild {
    /// Starts `spec` in its own session; its output goes to `log`.
    pub fn spawn(spec: ProcessSpec, log: LogSink) -> Result<Self, RuntimeError> {
        let program = spec.argv.first().cloned().unwrap_or_default();
        let serr = |source| RuntimeError::Spawn {
            unit: spec.unit.clone(),
            program: program.clone(),
            source,
        };
        if program.is_empty() {
            return Err(serr(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "empty command",
            )));
        }
        let ids = resolve_ids(&spec)?;
        let mut cmd = command_for(&spec, &program, ids.as_ref());
        in_own_session_as(&mut cmd, ids.as_ref());
        let mut guard = reaper::lock_for_spawn();
        let mut child = cmd.spawn().map_err(serr)?;
        let pid = child.id();
        let exit_rx = guard.register(pid);
        drop(guard);
        leftovers::add(pid, &spec.unit);
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(read_lines(OwnedFd::from(out), log.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(read_lines(OwnedFd::from(err), log));
        }
        // The reaper owns the exit status; std's handle is not waited on.
        drop(child);
        Ok(ProcessChild {
            unit: spec.unit,
            pid,
            exit_rx: Some(exit_rx),
            exit: None,
            readers,
            group_gone: false,
        })
    }

    /// Convenience for other runtimes (e.g. `podman run` as a captured child).
    pub fn spawn_argv(
        unit: &str,
        argv: Vec<String>,
        env: BTreeMap<String, String>,
        user: Option<String>,
        workdir: Option<PathBuf>,
        log: LogSink,
    ) -> Result<Self, RuntimeError> {
        Self::spawn(
            ProcessSpec {
                unit: unit.to_string(),
                argv,
                env,
                user,
                group: None,
                workdir,
            },
            log,
        )
    }

    /// The leader's pid (also the process group and session id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The leader's exit, if it has been seen.
    pub fn exited(&self) -> Option<&ExitInfo> {
        self.exit.as_ref()
    }

    /// Waits for the leader to exit (its output read to the end, briefly). Cancel-safe.
    pub async fn wait(&mut self) -> ExitInfo {
        if let Some(e) = &self.exit {
            return e.clone();
        }
        let info = match self.exit_rx.as_mut() {
            Some(rx) => rx
                .await
                .unwrap_or_else(|_| ExitInfo::error("exit status lost")),
            None => ExitInfo::error("exit status lost"),
        };
        self.exit_rx = None;
        self.exit = Some(info.clone());
        // Pipes end when the last holder exits; descendants may keep them open.
        let readers = std::mem::take(&mut self.readers);
        let _ = tokio::time::timeout(Duration::from_millis(50), async {
            for r in readers {
                let _ = r.await;
            }
        })
        .await;
        info
    }

    /// Whether any process of the group is left.
    pub fn group_alive(&self) -> bool {
        !matches!(
            killpg(Pid::from_raw(self.pid as i32), None),
            Err(Errno::ESRCH)
        )
    }

    /// Sends a signal to the whole group.
    pub fn signal_group(&self, signal: Signal) {
        let _ = killpg(Pid::from_raw(self.pid as i32), signal);
    }

    /// Stops the group: `signal`, wait until it is empty, SIGKILL after `timeout`.
    /// Returns the leader's exit. Also cleans up after a leader that already exited.
    pub async fn stop(&mut self, signal: Signal, timeout: Duration) -> ExitInfo {
        if !self.group_gone {
            if self.group_alive() {
                self.signal_group(signal);
                if !self.wait_group(timeout).await {
                    tracing::warn!(
                        "unit {}: still running {timeout:?} after {}; sending SIGKILL to its process group",
                        self.unit,
                        signal.as_str()
                    );
                    self.signal_group(Signal::SIGKILL);
                    if !self.wait_group(Duration::from_secs(10)).await {
                        tracing::error!(
                            "unit {}: process group {} survives SIGKILL (stuck in the kernel?)",
                            self.unit,
                            self.pid
                        );
                    }
                }
            }
            self.group_gone = !self.group_alive();
            if self.group_gone {
                leftovers::remove(self.pid);
            }
        }
        self.wait().await
    }

    /// Polls until the group is empty and the leader reaped; false on timeout.
    async fn wait_group(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(2);
        loop {
            if self.exit.is_none() {
                if let Some(rx) = self.exit_rx.as_mut() {
                    if let Ok(info) = rx.try_recv() {
                        self.exit_rx = None;
                        self.exit = Some(info);
                    }
                }
            }
            if !self.group_alive() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // Zombies count as members until reaped: nudge the reaper.
            reaper::reap_off_workers().await;
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

impl Drop for ProcessChild {
    fn drop(&mut self) {
        // A child handle dropped without stop (a panicking unit task) must not leave a
        // group running unsupervised.
        if !self.group_gone && self.group_alive() {
            self.signal_group(Signal::SIGKILL);
            leftovers::remove(self.pid);
        }
    }
}

/// Reads one pipe to its end, one log line per newline; lines over `MAX_LINE` are cut.
fn read_lines(fd: OwnedFd, log: LogSink) -> JoinHandle<()> {
    tokio::spawn(async move {
        let _ = nix::fcntl::fcntl(
            &fd,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        let mut rx = match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
            Ok(r) => r,
            Err(e) => {
                log.line(format!("(cannot read output: {e})"));
                return;
            }
        };
        let mut buf = vec![0u8; 64 * 1024];
        let mut line: Vec<u8> = Vec::new();
        let mut cut = 0usize;
        loop {
            let n = match rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut chunk = &buf[..n];
            while !chunk.is_empty() {
                match chunk.iter().position(|b| *b == b'\n') {
                    Some(i) => {
                        take(&mut line, &mut cut, &chunk[..i]);
                        log.line_bytes(strip_cr(&line), cut);
                        line.clear();
                        cut = 0;
                        chunk = &chunk[i + 1..];
                    }
                    None => {
                        take(&mut line, &mut cut, chunk);
                        chunk = &[];
                    }
                }
            }
        }
        if !line.is_empty() || cut > 0 {
            log.line_bytes(strip_cr(&line), cut);
        }
    })
}

fn take(line: &mut Vec<u8>, cut: &mut usize, bytes: &[u8]) {
    let room = MAX_LINE.saturating_sub(line.len());
    let keep = bytes.len().min(room);
    line.extend_from_slice(&bytes[..keep]);
    *cut += bytes.len() - keep;
}

fn strip_cr(l: &[u8]) -> &[u8] {
    l.strip_suffix(b"\r").unwrap_or(l)
}
