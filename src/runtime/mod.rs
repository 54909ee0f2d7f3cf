//! How a unit's process exists: a native child (`process`), a container (`podman`), or an
//! in-daemon Rust task. The supervisor only sees [`Child`]: a pid, a way to wait for the
//! exit, and a way to stop it.

pub mod leftovers;
pub mod podman;
pub mod process;
pub mod reaper;
pub mod task;

pub use crate::logsink::LogSink;
pub use process::{ProcessChild, ProcessSpec};
pub use task::TaskChild;

use crate::plan::{Exec, Plan, Runtime, Unit};
use crate::secrets::SecretStore;
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Errors starting or stopping a unit; each names the unit and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("unit {unit}: cannot start {program:?}: {source}")]
    Spawn {
        unit: String,
        program: String,
        source: std::io::Error,
    },
    #[error("unit {unit}: unknown user {user:?} (create it or fix services.{unit}.user)")]
    UnknownUser { unit: String, user: String },
    #[error("unit {unit}: unknown group {group:?} (create it or fix services.{unit}.group)")]
    UnknownGroup { unit: String, group: String },
    #[error("unit {unit}: cannot read env file {path}: {source}")]
    EnvFile {
        unit: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unit {unit}: env {key}: {source}")]
    Secret {
        unit: String,
        key: String,
        source: crate::secrets::SecretError,
    },
    #[error("unit {unit}: {message}")]
    Other { unit: String, message: String },
}

/// How a run of a unit ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExitInfo {
    /// Exit code when the process exited by itself.
    pub code: Option<i32>,
    /// Signal number when it was killed.
    pub signal: Option<i32>,
    /// Why it failed when no process status applies (task error, lost container…).
    pub error: Option<String>,
}

impl ExitInfo {
    /// Exit with a code.
    pub fn code(code: i32) -> Self {
        ExitInfo {
            code: Some(code),
            ..Default::default()
        }
    }
    /// Killed by a signal.
    pub fn signal(sig: i32) -> Self {
        ExitInfo {
            signal: Some(sig),
            ..Default::default()
        }
    }
    /// Failed for a reason that is not a process status.
    pub fn error(msg: impl Into<String>) -> Self {
        ExitInfo {
            error: Some(msg.into()),
            ..Default::default()
        }
    }
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0) && self.error.is_none()
    }
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(e) = &self.error {
            return f.write_str(e);
        }
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit {c}"),
            (None, Some(s)) => match Signal::try_from(s) {
                Ok(sig) => write!(f, "killed by {}", sig.as_str()),
                Err(_) => write!(f, "killed by signal {s}"),
            },
            (None, None) => f.write_str("ended"),
        }
    }
}

/// Everything a runtime needs to start one unit.
pub struct SpawnCtx<'a> {
    pub unit: &'a Unit,
    /// The unit's environment with secrets resolved (on top of the daemon's own).
    pub env: &'a BTreeMap<String, String>,
    pub plan: &'a Arc<Plan>,
    pub log: &'a LogSink,
    pub secrets: &'a SecretStore,
}

/// A started unit, whatever runs it.
pub enum Child {
    Process(ProcessChild),
    Podman(podman::PodmanChild),
    Task(TaskChild),
}

impl Child {
    /// The main process id, when there is one.
    pub fn pid(&self) -> Option<u32> {
        match self {
            Child::Process(c) => Some(c.pid()),
            Child::Podman(c) => c.pid(),
            Child::Task(_) => None,
        }
    }

    /// The container's name, for podman units.
    pub fn container(&self) -> Option<String> {
        match self {
            Child::Podman(c) => Some(c.name().to_string()),
            _ => None,
        }
    }

    /// Waits until the unit ends by itself. Cancel-safe.
    pub async fn wait(&mut self) -> ExitInfo {
        match self {
            Child::Process(c) => c.wait().await,
            Child::Podman(c) => c.wait().await,
            Child::Task(c) => c.wait().await,
        }
    }

    /// Stops the unit: `signal`, then SIGKILL after `timeout`; returns once all of it is gone.
    pub async fn stop(&mut self, signal: Signal, timeout: Duration) -> ExitInfo {
        match self {
            Child::Process(c) => c.stop(signal, timeout).await,
            Child::Podman(c) => c.stop(signal, timeout).await,
            Child::Task(c) => c.stop().await,
        }
    }
}

/// Starts a unit with the runtime its plan names.
pub async fn spawn(ctx: SpawnCtx<'_>) -> Result<Child, RuntimeError> {
    if let Exec::Task(t) = &ctx.unit.exec {
        return Ok(Child::Task(TaskChild::spawn(
            t,
            crate::plan::TaskContext {
                unit: ctx.unit.name.clone(),
                plan: ctx.plan.clone(),
                secrets: ctx.secrets.clone(),
                log: ctx.log.as_fn(),
            },
        )));
    }
    match &ctx.unit.runtime {
        Runtime::Process => {
            let Exec::Command(argv) = &ctx.unit.exec else {
                unreachable!("tasks handled above")
            };
            let spec = ProcessSpec::for_unit(ctx.unit, argv.clone(), ctx.env.clone())?;
            Ok(Child::Process(ProcessChild::spawn(spec, ctx.log.clone())?))
        }
        Runtime::Podman(_) => Ok(Child::Podman(podman::spawn(ctx).await?)),
    }
}

/// Variables the daemon must not hand down (they address the daemon's own supervisor).
const NOT_INHERITED: &[&str] = &[
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "CREDENTIALS_DIRECTORY",
];

/// Whether the daemon's own variable `key` is passed to children.
pub fn inherited(key: &str) -> bool {
    !NOT_INHERITED.contains(&key)
}

/// The unit's environment: `env_files` (KEY=VALUE lines) overlaid by `env`, secrets resolved.
pub fn resolve_env(
    unit: &Unit,
    secrets: &SecretStore,
) -> Result<BTreeMap<String, String>, RuntimeError> {
    let mut out = BTreeMap::new();
    for path in &unit.env_files {
        let text = std::fs::read_to_string(path).map_err(|source| RuntimeError::EnvFile {
            unit: unit.name.clone(),
            path: path.clone(),
            source,
        })?;
        for (k, v) in parse_env_file(&text) {
            out.insert(k, v);
        }
    }
    for (k, v) in &unit.env {
        let val = v.resolve(secrets).map_err(|source| RuntimeError::Secret {
            unit: unit.name.clone(),
            key: k.clone(),
            source,
        })?;
        out.insert(k.clone(), val);
    }
    Ok(out)
}

/// `KEY=VALUE` lines; blank lines and `#` comments skipped, `export ` and matching quotes removed.
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = if v.len() >= 2
                && ((v.starts_with('"') && v.ends_with('"'))
                    || (v.starts_with('\'') && v.ends_with('\'')))
            {
                &v[1..v.len() - 1]
            } else {
                v
            };
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_lines() {
        let v = parse_env_file("# c\nA=1\n\nexport B = \"two words\"\nC='x=y'\nbad\n");
        assert_eq!(
            v,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "x=y".into())
            ]
        );
    }
}
