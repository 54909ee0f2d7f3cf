//! Running the `podman` CLI (async for the daemon, blocking for `bundle`), with errors
//! that quote the command and podman's own message.

use super::PodmanError;
use std::process::{Output, Stdio};

/// The podman binary (`PROMETHEUS_STACK_PODMAN` overrides it, e.g. `/usr/local/bin/podman`).
pub fn podman_bin() -> String {
    std::env::var("PROMETHEUS_STACK_PODMAN").unwrap_or_else(|_| "podman".into())
}

fn describe(args: &[&str]) -> String {
    format!("podman {}", args.join(" "))
}

pub(super) fn spawn_error(e: std::io::Error) -> PodmanError {
    if e.kind() == std::io::ErrorKind::NotFound {
        PodmanError::NotInstalled { bin: podman_bin() }
    } else {
        PodmanError::Io {
            what: format!("cannot start {}", podman_bin()),
            source: e,
        }
    }
}

fn check(args: &[&str], out: Output) -> Result<String, PodmanError> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(PodmanError::Command {
            command: describe(args),
            code: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Runs podman to completion; stdout on success, the command and stderr otherwise.
pub async fn output(args: &[&str]) -> Result<String, PodmanError> {
    let out = tokio::process::Command::new(podman_bin())
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(spawn_error)?;
    check(args, out)
}

/// Runs podman with `input` on stdin (secret values never go on the command line).
pub async fn output_with_stdin(args: &[&str], input: &[u8]) -> Result<String, PodmanError> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(podman_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(spawn_error)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).await.map_err(|e| PodmanError::Io {
            what: format!("writing to {}", describe(args)),
            source: e,
        })?;
    }
    let out = child.wait_with_output().await.map_err(spawn_error)?;
    check(args, out)
}

/// Blocking variant of [`output`].
pub fn output_blocking(args: &[&str]) -> Result<String, PodmanError> {
    let out = std::process::Command::new(podman_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(spawn_error)?;
    check(args, out)
}

/// Whether podman's error says the container does not exist (nothing to stop or remove).
pub fn is_no_such_container(e: &PodmanError) -> bool {
    matches!(e, PodmanError::Command { stderr, .. } if stderr.contains("no such container"))
}
