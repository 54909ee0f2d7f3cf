//! One running container: the attached `podman run` process plus the container's name.
//!
//! `podman run` stays attached for the container's whole life, so its exit is the
//! container's exit and its stdout/stderr are the container's (`--log-driver=passthrough`).
//! Killing `podman run` does NOT stop the container; every stop goes through podman by name.

use super::args::{self, RunArgs};
use super::{command, env, image, lifecycle, PodmanError};
use crate::plan::{Plan, PodmanSpec, Runtime, Unit};
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What starting a container needs.
pub struct ContainerStart<'a> {
    pub plan: &'a Plan,
    pub unit: &'a Unit,
    /// The unit's env with secrets resolved.
    pub env: &'a BTreeMap<String, String>,
}

/// A started container.
#[derive(Debug)]
pub struct Container {
    name: String,
    stop_signal: Signal,
    child: tokio::process::Child,
    pid: Option<u32>,
    secrets: Vec<String>,
    exited: Option<ExitStatus>,
}

/// How long `spawn` waits for the container's main process to exist.
const START_WAIT: Duration = Duration::from_secs(120);

impl Container {
    /// Checks the image, prepares volumes and env, and runs the container attached.
    /// Returns once the container's main process exists (or `podman run` has exited).
    pub async fn start(s: ContainerStart<'_>) -> Result<Self, PodmanError> {
        let stack = &s.plan.stack;
        let unit = s.unit;
        let Runtime::Podman(spec) = &unit.runtime else {
            return Err(PodmanError::NotPodman {
                unit: unit.name.clone(),
            });
        };
        if !args::valid_stack_name(&stack.name) {
            return Err(PodmanError::BadStackName {
                name: stack.name.clone(),
            });
        }
        image::require(&unit.name, &spec.image).await?;
        let user = resolve_user(unit)?;
        prepare_volumes(s.plan, unit, spec, user)?;

        let dir = super::state_dir(s.plan);
        let env_split = env::split(&stack.name, &unit.name, s.env);
        let env_file = dir.join(format!("{}.env", unit.name));
        let has_file = !env_split.file.is_empty();
        if has_file {
            env::write_file(&env_file, &env_split.file)?;
        }
        env::create_secrets(&env_split).await?;
        let secret_refs: Vec<(String, String)> = env_split
            .secrets
            .iter()
            .map(|(n, v, _)| (n.clone(), v.clone()))
            .collect();
        let pidfile = dir.join(format!("{}.pid", unit.name));
        let _ = std::fs::remove_file(&pidfile);
        std::fs::create_dir_all(&dir).map_err(|e| PodmanError::Io {
            what: format!("cannot create {}", dir.display()),
            source: e,
        })?;
        let argv = args::run_argv(&RunArgs {
            stack,
            unit,
            spec,
            env_file: has_file.then_some(env_file.as_path()),
            env_secrets: &secret_refs,
            pidfile: &pidfile,
            user,
        });
        let spawned = tokio::process::Command::new(command::podman_bin())
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Terminal signals to the daemon's group must not reach podman (it would
            // proxy them into the container behind the supervisor's back).
            .process_group(0)
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_file(&env_file);
                return Err(command::spawn_error(e));
            }
        };
        let pid = wait_for_pidfile(&pidfile, &mut child).await;
        // podman has read the env file once the container process exists.
        if has_file {
            let _ = std::fs::remove_file(&env_file);
        }
        Ok(Container {
            name: args::container_name(&stack.name, &unit.name),
            stop_signal: unit.stop_signal,
            child,
            pid,
            secrets: secret_refs.into_iter().map(|(n, _)| n).collect(),
            exited: None,
        })
    }

    /// Container name (`STACK-UNIT`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Host PID of the container's main process (`catatonit` with `--init`).
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// PID of the attached `podman run`.
    pub fn podman_pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The container's stdout (through `podman run`), once.
    pub fn take_stdout(&mut self) -> Option<tokio::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// The container's stderr (and podman's own errors), once.
    pub fn take_stderr(&mut self) -> Option<tokio::process::ChildStderr> {
        self.child.stderr.take()
    }

    /// Waits for the container to exit; podman run's status is the container's.
    pub async fn wait(&mut self) -> ExitStatus {
        if let Some(s) = self.exited {
            return s;
        }
        let status = loop {
            match self.child.wait().await {
                Ok(s) => break s,
                Err(e) => {
                    tracing::warn!(container = %self.name, "waiting for podman run: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        self.exited = Some(status);
        env::remove_secrets(&self.secrets).await;
        status
    }

    /// Stops by name: `podman stop -t` (or `podman kill -s SIGNAL` for a signal other
    /// than the container's stop signal), SIGKILL after `timeout`, then `podman rm -f`.
    pub async fn stop(&mut self, signal: Signal, timeout: Duration) -> ExitStatus {
        if let Some(s) = self.exited {
            return s;
        }
        let result = if signal == self.stop_signal {
            lifecycle::stop(&self.name, timeout).await
        } else {
            match lifecycle::kill(&self.name, signal).await {
                Ok(()) => match tokio::time::timeout(timeout, self.child.wait()).await {
                    Ok(_) => Ok(()),
                    Err(_) => lifecycle::kill(&self.name, Signal::SIGKILL).await,
                },
                Err(e) => Err(e),
            }
        };
        if let Err(e) = result {
            tracing::warn!(container = %self.name, "stopping: {e}");
        }
        if let Err(e) = lifecycle::remove(std::slice::from_ref(&self.name), Duration::ZERO).await {
            tracing::warn!(container = %self.name, "removing: {e}");
        }
        // With the container gone, podman run returns promptly; don't hang if it doesn't.
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
        }
        self.wait().await
    }
}

async fn wait_for_pidfile(pidfile: &Path, child: &mut tokio::process::Child) -> Option<u32> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(2);
    while started.elapsed() < START_WAIT {
        if let Ok(s) = std::fs::read_to_string(pidfile) {
            if let Ok(pid) = s.trim().parse::<u32>() {
                return Some(pid);
            }
        }
        if matches!(child.try_wait(), Ok(Some(_))) {
            return None;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(20));
    }
    None
}

/// The unit's user and group as numbers: names may not exist inside the image, and
/// volume ownership on the host must match.
fn resolve_user(unit: &Unit) -> Result<Option<(u32, u32)>, PodmanError> {
    let Some(name) = &unit.user else {
        return Ok(None);
    };
    let user = nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .ok_or_else(|| PodmanError::UnknownUser {
            unit: unit.name.clone(),
            what: format!("user {name:?}"),
        })?;
    let gid = match &unit.group {
        Some(g) => nix::unistd::Group::from_name(g)
            .ok()
            .flatten()
            .ok_or_else(|| PodmanError::UnknownUser {
                unit: unit.name.clone(),
                what: format!("group {g:?}"),
            })?
            .gid
            .as_raw(),
        None => user.gid.as_raw(),
    };
    Ok(Some((user.uid.as_raw(), gid)))
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
