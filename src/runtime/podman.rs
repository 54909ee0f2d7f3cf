//! Container runtime (placeholder): the podman helper replaces this file. Until then a
//! podman unit fails to start with an error that says so.

use super::{ExitInfo, RuntimeError, SpawnCtx};
use crate::plan::Plan;
use nix::sys::signal::Signal;
use std::time::Duration;

/// A running container.
pub struct PodmanChild {
    _private: (),
}

impl PodmanChild {
    /// The pid of the `podman run` process, when there is one.
    pub fn pid(&self) -> Option<u32> {
        None
    }

    /// Waits for the container to end.
    pub async fn wait(&mut self) -> ExitInfo {
        ExitInfo::error("the podman runtime is not built in this version")
    }

    /// Stops the container by name.
    pub async fn stop(&mut self, _signal: Signal, _timeout: Duration) -> ExitInfo {
        ExitInfo::error("the podman runtime is not built in this version")
    }
}

/// Starts a podman unit.
pub async fn spawn(ctx: SpawnCtx<'_>) -> Result<PodmanChild, RuntimeError> {
    Err(RuntimeError::Other {
        unit: ctx.unit.name.clone(),
        message: "the podman runtime is not built in this version; use runtime = \"process\""
            .into(),
    })
}

/// Removes containers a previous run left behind (none without the podman runtime).
pub async fn remove_leftovers(plan: &Plan) -> Result<(), RuntimeError> {
    let _ = plan;
    Ok(())
}
