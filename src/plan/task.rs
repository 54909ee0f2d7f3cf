//! In-daemon tasks: provisioning oneshots, prepare hooks and custom health probes.

use super::Plan;
use crate::secrets::SecretStore;
use serde::{Serialize, Serializer};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed future, as returned by tasks.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The function behind a task; the error is one line for status and logs.
pub type TaskFn = dyn Fn(TaskContext) -> BoxFuture<Result<(), String>> + Send + Sync;

/// A named Rust function the supervisor can run like a process.
#[derive(Clone)]
pub struct Task {
    /// Describes the task *and its parameters*: two tasks with the same description are
    /// considered the same definition on reload.
    pub describe: String,
    pub run: Arc<TaskFn>,
}

impl Task {
    /// Wraps an async closure.
    pub fn new<F, Fut>(describe: impl Into<String>, f: F) -> Self
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Task {
            describe: describe.into(),
            run: Arc::new(move |ctx| Box::pin(f(ctx))),
        }
    }
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Task({})", self.describe)
    }
}

impl Serialize for Task {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("task: {}", self.describe))
    }
}

/// What a task gets to work with.
#[derive(Clone)]
pub struct TaskContext {
    /// The unit running the task.
    pub unit: String,
    pub plan: Arc<Plan>,
    pub secrets: SecretStore,
    /// Writes one line to the unit's log (daemon stderr and the unit's ring).
    pub log: Arc<dyn Fn(String) + Send + Sync>,
}

impl TaskContext {
    /// Logs one line under the unit's name.
    pub fn log(&self, line: impl Into<String>) {
        (self.log)(line.into())
    }
}
