//! The podman runtime: a unit runs as a container that our supervisor owns.
//!
//! Decisions (DESIGN §1, §7; issue 5):
//! - **Name and labels.** Container `STACK-UNIT`, labels `io.prometheus-stack.stack=STACK`
//!   and `io.prometheus-stack.unit=UNIT`. `--replace` plus [`remove_leftovers`] at daemon
//!   start guarantee one container per unit even after the daemon was SIGKILLed.
//! - **Host networking, not `-p 127.0.0.1:P:P`.** Every address the plan derives is a
//!   loopback URL (`DATABASE_URL=…@127.0.0.1:5432`, the S3 endpoint, the issuer behind
//!   our proxy). Inside a bridged container 127.0.0.1 is the container itself, so those
//!   URLs would break, and native services listen on loopback only, so they could not be
//!   reached through the bridge gateway either. With `--network=host` a unit behaves the
//!   same whichever runtime it uses; its port is the plan's port, reached by the proxy
//!   and health probes on 127.0.0.1. It is also cheaper: 0.10 s per container start
//!   against 0.40 s with a CNI bridge and a published port on the test machine. The
//!   price: a program that binds 0.0.0.0 is reachable from outside, exactly as it would
//!   be natively, so presets tell their programs to bind 127.0.0.1.
//! - **Never pull.** `--pull=never`; a missing image is [`PodmanError::ImageMissing`],
//!   naming the image and `prometheus-stack bundle import`.
//! - **Env never on a command line.** Values go through a 0600 `--env-file` in
//!   `RUNTIME_DIR/podman/`, deleted as soon as the container's process exists; values
//!   with newlines go through podman secrets (`type=env`) created from stdin. What can
//!   see them: not `ps`/`/proc/PID/cmdline` of anyone; not other users' `podman inspect`
//!   (rootful podman's storage under /var/lib/containers and /run/containers is 0700
//!   root, and another user's podman sees only its own rootless storage). Root's
//!   `podman inspect` does show `Config.Env` — with podman 4.3 that holds for secret-type
//!   env too (checked), and root can read `DATA_DIR/secrets` anyway — and so does
//!   `/proc/PID/environ` of the container's processes for root and the unit's own user.
//! - **Lifecycle is ours.** `--rm --restart=no`; `podman run` stays attached so its exit
//!   is the container's exit and the supervisor restarts it with the unit's backoff.
//!   Stop = `podman stop -t N NAME` (the unit's stop signal via `--stop-signal`, SIGKILL
//!   after N), then `podman rm -f NAME`. `--init` (catatonit) is PID 1 unless the unit
//!   opts out, because node and busybox ignore SIGTERM as PID 1.
//! - **Logs.** `--log-driver=passthrough`: the container's stdout/stderr are the pipes of
//!   `podman run`, captured like a native unit's, and podman keeps no second, unrotated
//!   log file.
//! - **User.** The unit's `user`/`group` as numeric `--user UID:GID` (names need not
//!   exist in the image; volume folders we create are owned by it).
//! - **Privileges** (security issue point 12). Every container runs with
//!   `--security-opt=no-new-privileges`: setuid binaries and file capabilities in the
//!   image never raise what it started with (gosu/su-exec still drop privileges). What
//!   it keeps is [`crate::plan::Capabilities`]: presets drop all and add back what their
//!   program needs (Logto, LobeChat, MinIO: nothing — node apps and a store on ports
//!   above 1024 writing only their own user's files); RustFS keeps podman's defaults
//!   until its entrypoint's needs are known. A generic unit keeps podman's default set
//!   minus SETFCAP, SETPCAP and SYS_CHROOT, so operators' images that start as root and
//!   switch user keep working; `capabilities = [...]` in its section drops all others.
//! - **Environment.** A container gets the image's env plus the unit's (`env_files`
//!   overlaid by `env`), never the daemon's own environment as native units do.
//! - **Command.** `command` replaces the image's CMD (its ENTRYPOINT stays), as in
//!   Compose; an empty command runs the image's own. `workdir` must be a path inside
//!   the container.
//! - **PID.** [`PodmanChild::pid`] is the container's main process on the host
//!   (`podman-init` with `--init`); every process of the container is in its session.

mod args;
mod child;
mod command;
mod env;
pub mod image;
pub mod lifecycle;

pub use args::{container_name, run_argv, valid_stack_name, RunArgs, LABEL_STACK, LABEL_UNIT};
pub use child::PodmanChild;
pub use command::podman_bin;

use crate::plan::Plan;
use crate::runtime::{RuntimeError, SpawnCtx};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use tokio::sync::watch;

/// Errors of the podman runtime; each says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum PodmanError {
    #[error("{bin} is not installed (apt-get install podman runc catatonit)")]
    NotInstalled { bin: String },
    #[error("`{command}` failed (exit {code:?}): {stderr}")]
    Command {
        command: String,
        code: Option<i32>,
        stderr: String,
    },
    #[error("cannot read the output of `{command}`: {source}")]
    Parse {
        command: String,
        source: serde_json::Error,
    },
    #[error("image {image} is not in podman's local storage and is never pulled; load it with `prometheus-stack bundle import FILE` (made with `prometheus-stack bundle create OUT.tar` on a machine that has it)")]
    ImageMissing { unit: String, image: String },
    #[error("unit {unit} does not have runtime = \"podman\"")]
    NotPodman { unit: String },
    #[error("stack.name {name:?} cannot name containers: use letters, digits, '-' and '_'")]
    BadStackName { name: String },
    #[error("unknown {what} (create it, or fix the unit's user/group)")]
    UnknownUser { unit: String, what: String },
    #[error("volume host path {path} does not exist (fix {key}, or use a name to get a folder under DATA_DIR/volumes)")]
    VolumeMissing {
        unit: String,
        key: String,
        path: PathBuf,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// `RUNTIME_DIR/podman`: env files (briefly) and pid files.
pub fn state_dir(plan: &Plan) -> PathBuf {
    plan.stack.runtime_dir.join("podman")
}

/// Whether the start-time cleanup has finished (true when none is running). The daemon
/// cleans up in the background so native units start at once; containers wait for it.
static LEFTOVERS_CLEARED: LazyLock<watch::Sender<bool>> = LazyLock::new(|| watch::channel(true).0);

/// Starts [`remove_leftovers`] in the background; [`spawn`] waits until it has finished,
/// so a new container never races the removal of an old one with the same name.
pub fn remove_leftovers_in_background(plan: Arc<Plan>) {
    LEFTOVERS_CLEARED.send_replace(false);
    tokio::spawn(async move {
        if let Err(e) = remove_leftovers(&plan).await {
            tracing::warn!("{e}");
        }
        LEFTOVERS_CLEARED.send_replace(true);
    });
}

/// Starts a podman unit: its container runs attached, its output goes to the unit's log.
pub async fn spawn(ctx: SpawnCtx<'_>) -> Result<PodmanChild, RuntimeError> {
    let _ = LEFTOVERS_CLEARED.subscribe().wait_for(|done| *done).await;
    PodmanChild::start(ctx.plan, ctx.unit, ctx.env, ctx.log.clone())
        .await
        .map_err(|e| RuntimeError::Other {
            unit: ctx.unit.name.clone(),
            message: e.to_string(),
        })
}

/// At daemon start: removes every container (and podman secret) labelled with this
/// stack; no unit runs yet, so none of them is owned. Without podman installed and no
/// podman unit in the plan there is nothing to do.
pub async fn remove_leftovers(plan: &Plan) -> Result<(), RuntimeError> {
    let uses_podman = plan
        .units
        .iter()
        .any(|u| matches!(u.runtime, crate::plan::Runtime::Podman(_)));
    match lifecycle::remove_stack_leftovers(plan, &[]).await {
        Err(PodmanError::NotInstalled { .. }) if !uses_podman => Ok(()),
        Err(e) => Err(RuntimeError::Other {
            unit: "(podman leftovers)".into(),
            message: e.to_string(),
        }),
        Ok(()) => Ok(()),
    }
}
