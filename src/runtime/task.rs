//! An in-daemon Rust task run like a process (provisioning oneshots).

use super::ExitInfo;
use crate::plan::{TaskContext, TaskError, TaskSpec};
use tokio::task::JoinHandle;

/// A running task.
pub struct TaskChild {
    handle: Option<JoinHandle<Result<(), TaskError>>>,
    exit: Option<ExitInfo>,
}

impl TaskChild {
    /// Starts the task on the runtime.
    pub fn spawn(task: &TaskSpec, ctx: TaskContext) -> Self {
        let fut = task.run(ctx);
        TaskChild {
            handle: Some(tokio::spawn(fut)),
            exit: None,
        }
    }

    /// Waits for the task: Ok is exit 0, an error is a failure with its message. Cancel-safe.
    pub async fn wait(&mut self) -> ExitInfo {
        if let Some(e) = &self.exit {
            return e.clone();
        }
        let info = match self.handle.as_mut() {
            Some(h) => match h.await {
                Ok(Ok(())) => ExitInfo::code(0),
                Ok(Err(e)) => ExitInfo::error(e.to_string()),
                Err(e) if e.is_panic() => ExitInfo::error("task panicked"),
                Err(_) => ExitInfo::error("task stopped"),
            },
            None => ExitInfo::error("task stopped"),
        };
        self.handle = None;
        self.exit = Some(info.clone());
        info
    }

    /// Cancels the task.
    pub async fn stop(&mut self) -> ExitInfo {
        if let Some(h) = &self.handle {
            h.abort();
        }
        self.wait().await
    }
}
