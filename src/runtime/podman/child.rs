//! One running container: the attached `podman run` process plus the container's name.
//!
//! `podman run` stays attached for the container's whole life, so its exit is the
//! container's exit and its stdout/stderr are the container's (`--log-driver=passthrough`),
//! read into the unit's log by the same line reader as a native unit's. It is spawned
//! through [`ProcessChild`] (own session, registered with the daemon's reaper). Killing
//! `podman run` does NOT stop the container; every stop goes through podman by name.

use super::args::{self, RunArgs};
use super::{command, env, image, lifecycle, PodmanError};
use crate::plan::{Plan, PodmanSpec, Runtime, Unit};
use crate::runtime::{ExitInfo, LogSink, ProcessChild, RuntimeError};
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A running container unit.
pub struct PodmanChild {
    unit: String,
    name: String,
    stop_signal: Signal,
    run: ProcessChild,
    pid: Option<u32>,
    secrets: Vec<String>,
    exit: Option<ExitInfo>,
    removed: bool,
}

/// How long `spawn` waits for the container's main process to exist.
const START_WAIT: Duration = Duration::from_secs(120);

impl PodmanChild {
    /// Prepares volumes and env and runs the container attached with its output going to
    /// `log` (a missing image is reported as [`PodmanError::ImageMissing`]). Returns once the container's main process exists (or
    /// `podman run` has already ended: [`PodmanChild::wait`] then reports why).
    pub async fn start(
        plan: &Plan,
        unit: &Unit,
        env_vars: &BTreeMap<String, String>,
        log: LogSink,
    ) -> Result<Self, PodmanError> {
        let stack = &plan.stack;
        let spec = podman_spec(plan, unit)?;
        // The unit's `user`, else the preset's non-root id for its image; rootless
        // podman (a non-root daemon) already runs the container as the daemon's user.
        let user = match resolve_user(unit)? {
            Some(u) => Some(u),
            None if nix::unistd::geteuid().is_root() => spec.image_user,
            None => None,
        };
        prepare_volumes(plan, unit, spec, user)?;
        let staged = stage_env(plan, unit, env_vars).await?;
        let pidfile = staged.dir.join(format!("{}.pid", unit.name));
        let _ = std::fs::remove_file(&pidfile);
        let mut argv = vec![command::podman_bin()];
        argv.extend(args::run_argv(&RunArgs {
            stack,
            unit,
            spec,
            env_file: staged.env_file.as_deref(),
            env_secrets: &staged.secret_refs,
            pidfile: &pidfile,
            user,
        }));
        let mut run = spawn_podman_run(unit, argv, log, &staged).await?;
        let (pid, exit) = wait_for_pidfile(&pidfile, &mut run).await;
        // podman has read the env file once the container process exists.
        if let Some(f) = &staged.env_file {
            let _ = std::fs::remove_file(f);
        }
        let secrets = staged.secret_names();
        // The image is checked only when podman failed: a `podman image exists` before
        // every start would cost ~30 ms of each start-to-healthy. `--pull=never` makes a
        // missing image a podman error (exit 125), turned here into the operator's fix.
        if exit.as_ref().is_some_and(|e| e.code == Some(125)) {
            if let Err(e) = image::require(&unit.name, &spec.image).await {
                env::remove_secrets(&secrets).await;
                return Err(e);
            }
        }
        let mut child = PodmanChild {
            unit: unit.name.clone(),
            name: args::container_name(&stack.name, &unit.name),
            stop_signal: unit.stop_signal,
            run,
            pid,
            secrets,
            exit: None,
            removed: false,
        };
        if let Some(e) = exit {
            child.finish(e).await;
        }
        Ok(child)
    }

    /// Container name (`STACK-UNIT`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Host PID of the container's main process (`podman-init` with `--init`), else of
    /// `podman run`; the container's processes descend from the former.
    pub fn pid(&self) -> Option<u32> {
        self.pid.or(Some(self.run.pid()))
    }

    /// PID of the attached `podman run`.
    pub fn podman_pid(&self) -> u32 {
        self.run.pid()
    }

    async fn finish(&mut self, raw: ExitInfo) -> ExitInfo {
        let info = match raw.code {
            // podman's own failures: the reason is in the unit's log (podman's stderr).
            Some(c @ 125..=127) => ExitInfo {
                code: Some(c),
                signal: None,
                error: Some(format!(
                    "podman run failed (exit {c}: {}); see `prometheus-stack logs {}`",
                    match c {
                        125 => "podman could not create or start the container",
                        126 => "the command in the image cannot be run",
                        _ => "the command is not in the image",
                    },
                    self.unit
                )),
            },
            _ => raw,
        };
        if self.exit.is_none() {
            env::remove_secrets(&self.secrets).await;
            self.exit = Some(info.clone());
        }
        info
    }

    /// Waits for the container to end; `podman run`'s exit is the container's. Cancel-safe.
    pub async fn wait(&mut self) -> ExitInfo {
        if let Some(e) = &self.exit {
            return e.clone();
        }
        let raw = self.run.wait().await;
        self.finish(raw).await
    }

    /// Stops by name: `podman stop -t` (or `podman kill -s SIGNAL` for a signal other
    /// than the container's stop signal), SIGKILL after `timeout`, then `podman rm -f`.
    /// After a container that ended by itself only the removal is checked.
    pub async fn stop(&mut self, signal: Signal, timeout: Duration) -> ExitInfo {
        if self.removed {
            return self.wait().await;
        }
        // A code means the container itself ended and `--rm` removed it; a signal (or an
        // error) means `podman run` was killed and the container may still run.
        let container_ended = self.exit.as_ref().is_some_and(|e| {
            e.code.is_some_and(|c| !(125..=127).contains(&c)) && e.signal.is_none()
        });
        if !container_ended {
            let stopped = if self.exit.is_some() {
                Ok(())
            } else if signal == self.stop_signal {
                lifecycle::stop(&self.name, timeout).await
            } else {
                match lifecycle::kill(&self.name, signal).await {
                    Ok(()) => match tokio::time::timeout(timeout, self.run.wait()).await {
                        Ok(raw) => {
                            self.finish(raw).await;
                            Ok(())
                        }
                        Err(_) => lifecycle::kill(&self.name, Signal::SIGKILL).await,
                    },
                    Err(e) => Err(e),
                }
            };
            if let Err(e) = stopped {
                tracing::warn!("unit {}: stopping container {}: {e}", self.unit, self.name);
            }
            if let Err(e) = lifecycle::remove(std::slice::from_ref(&self.name), timeout).await {
                tracing::warn!("unit {}: removing container {}: {e}", self.unit, self.name);
            }
        }
        self.removed = true;
        // With the container gone `podman run` returns promptly; never hang on it.
        if self.exit.is_none() {
            match tokio::time::timeout(Duration::from_secs(10), self.run.wait()).await {
                Ok(raw) => {
                    self.finish(raw).await;
                }
                Err(_) => {
                    tracing::warn!(
                        "unit {}: podman run still attached after its container was removed; killing it",
                        self.unit
                    );
                    self.run.signal_group(Signal::SIGKILL);
                }
            }
        }
        // Clean up the process group of `podman run` like any native unit.
        let raw = self.run.stop(Signal::SIGKILL, Duration::from_secs(5)).await;
        self.finish(raw).await
    }
}

impl Drop for PodmanChild {
    fn drop(&mut self) {
        // Dropped without stop (a panicking unit task): the container must not run on
        // unsupervised. `podman run` itself goes with ProcessChild's drop.
        if !self.removed && self.exit.is_none() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let name = self.name.clone();
                rt.spawn(async move {
                    let _ = lifecycle::remove(&[name], Duration::ZERO).await;
                });
            }
        }
    }
}

/// Polls for podman's pid file while watching `podman run`; returns the container's
/// pid, or the exit of `podman run` when it ended first.
async fn wait_for_pidfile(
    pidfile: &Path,
    run: &mut ProcessChild,
) -> (Option<u32>, Option<ExitInfo>) {
    let poll = async {
        let started = Instant::now();
        let mut delay = Duration::from_millis(2);
        while started.elapsed() < START_WAIT {
            if let Ok(s) = std::fs::read_to_string(pidfile) {
                if let Ok(pid) = s.trim().parse::<u32>() {
                    return Some(pid);
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(5));
        }
        None
    };
    tokio::select! {
        pid = poll => (pid, None),
        // ProcessChild::wait is cancel-safe.
        exit = run.wait() => (std::fs::read_to_string(pidfile).ok().and_then(|s| s.trim().parse().ok()), Some(exit)),
    }
}

/// The unit's user and group as numbers: names may not exist inside the image, and
/// volume ownership on the host must match.
/// The unit's container settings, once the unit and stack name are fit for podman.
fn podman_spec<'a>(plan: &Plan, unit: &'a Unit) -> Result<&'a PodmanSpec, PodmanError> {
    let Runtime::Podman(spec) = &unit.runtime else {
        return Err(PodmanError::NotPodman {
            unit: unit.name.clone(),
        });
    };
    if !args::valid_stack_name(&plan.stack.name) {
        return Err(PodmanError::BadStackName {
            name: plan.stack.name.clone(),
        });
    }
    Ok(spec)
}

/// The unit's environment as podman takes it: an env file and podman secrets.
struct StagedEnv {
    /// The runtime state directory for this stack's containers.
    dir: PathBuf,
    /// Written only when some variables go through a file; removed once podman read it.
    env_file: Option<PathBuf>,
    /// (podman secret name, variable) pairs.
    secret_refs: Vec<(String, String)>,
}

impl StagedEnv {
    fn secret_names(&self) -> Vec<String> {
        self.secret_refs.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Removes what was staged (the start failed).
    async fn discard(&self) {
        if let Some(f) = &self.env_file {
            let _ = std::fs::remove_file(f);
        }
        env::remove_secrets(&self.secret_names()).await;
    }
}

async fn stage_env(
    plan: &Plan,
    unit: &Unit,
    env_vars: &BTreeMap<String, String>,
) -> Result<StagedEnv, PodmanError> {
    let dir = super::state_dir(plan);
    std::fs::create_dir_all(&dir).map_err(|e| PodmanError::Io {
        what: format!("cannot create {}", dir.display()),
        source: e,
    })?;
    let env_split = env::split(&plan.stack.name, &unit.name, env_vars);
    let env_file = dir.join(format!("{}.env", unit.name));
    let has_file = !env_split.file.is_empty();
    if has_file {
        env::write_file(&env_file, &env_split.file)?;
    }
    env::create_secrets(&env_split).await?;
    let secret_refs = env_split
        .secrets
        .iter()
        .map(|(n, v, _)| (n.clone(), v.clone()))
        .collect();
    Ok(StagedEnv {
        dir,
        env_file: has_file.then_some(env_file),
        secret_refs,
    })
}

/// Spawns the attached `podman run`; on failure the staged env is removed again.
async fn spawn_podman_run(
    unit: &Unit,
    argv: Vec<String>,
    log: LogSink,
    staged: &StagedEnv,
) -> Result<ProcessChild, PodmanError> {
    // podman itself runs as the daemon's user with the daemon's env: the unit's env
    // reaches the container only through the env file and secrets.
    match ProcessChild::spawn_argv(&unit.name, argv, BTreeMap::new(), None, None, log) {
        Ok(c) => Ok(c),
        Err(e) => {
            staged.discard().await;
            Err(match e {
                RuntimeError::Spawn { source, .. }
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    PodmanError::NotInstalled {
                        bin: command::podman_bin(),
                    }
                }
                other => PodmanError::Io {
                    what: format!("cannot start {}", command::podman_bin()),
                    source: std::io::Error::other(other.to_string()),
                },
            })
        }
    }
}

fn resolve_user(unit: &Unit) -> Result<Option<(u32, u32)>, PodmanError> {
    let Some(name) = &unit.user else {
        return Ok(None);
    };
    // A numeric uid/gid is the image's own user, which need not exist on the host.
    let (uid, user_gid) = match name.parse::<u32>() {
        Ok(uid) => (uid, uid),
        Err(_) => {
            let user = nix::unistd::User::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| PodmanError::UnknownUser {
                    unit: unit.name.clone(),
                    what: format!("user {name:?}"),
                })?;
            (user.uid.as_raw(), user.gid.as_raw())
        }
    };
    let gid = match &unit.group {
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => nix::unistd::Group::from_name(g)
                .ok()
                .flatten()
                .ok_or_else(|| PodmanError::UnknownUser {
                    unit: unit.name.clone(),
                    what: format!("group {g:?}"),
                })?
                .gid
                .as_raw(),
        },
        None => user_gid,
    };
    Ok(Some((uid, gid)))
}

/// Creates named volumes' folders under DATA_DIR/volumes (owned by the unit's user);
/// other host paths must exist already.
fn prepare_volumes(
    plan: &Plan,
    unit: &Unit,
    spec: &PodmanSpec,
    user: Option<(u32, u32)>,
) -> Result<(), PodmanError> {
    let volumes_root = plan.stack.data_dir.join("volumes");
    for v in &spec.volumes {
        let host = PathBuf::from(v.split(':').next().unwrap_or_default());
        if host.starts_with(&volumes_root) {
            if !host.exists() {
                std::fs::create_dir_all(&host).map_err(|e| PodmanError::Io {
                    what: format!("cannot create volume folder {}", host.display()),
                    source: e,
                })?;
                if let Some((uid, gid)) = user {
                    nix::unistd::chown(
                        &host,
                        Some(nix::unistd::Uid::from_raw(uid)),
                        Some(nix::unistd::Gid::from_raw(gid)),
                    )
                    .map_err(|e| PodmanError::Io {
                        what: format!("cannot chown volume folder {}", host.display()),
                        source: e.into(),
                    })?;
                }
            }
        } else if !host.exists() {
            return Err(PodmanError::VolumeMissing {
                unit: unit.name.clone(),
                key: format!("{}.volumes", unit.config_key),
                path: host,
            });
        }
    }
    Ok(())
}
