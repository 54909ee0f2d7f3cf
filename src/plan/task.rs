//! In-daemon tasks as data: provisioning oneshots, prepare hooks and custom health probes.
//!
//! A task is a [`TaskSpec`]: which preset step runs, with every parameter it uses (secrets
//! only by name). The plan holds it, `show-config --json` prints it, and reload compares
//! it like any other unit field, so "did this task change?" is derived from the data.
//! The code behind each variant lives in `stack::tasks`.

use super::Plan;
use crate::secrets::SecretStore;
use crate::stack::logto::provision::ProvisionSpec;
use crate::stack::objects::datadir::DataDirSpec;
use crate::stack::objects::init::InitSpec;
use crate::stack::postgres::{PgConfig, PgServer};
use serde::{Serialize, Serializer};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use crate::stack::tasks::TaskError;

/// A boxed future, as returned by tasks.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The error an embedder's [`CustomTask`] may return.
pub type CustomError = Box<dyn std::error::Error + Send + Sync>;

/// The function behind a [`CustomTask`].
pub type TaskFn = dyn Fn(TaskContext) -> BoxFuture<Result<(), CustomError>> + Send + Sync;

/// A Rust step the supervisor can run like a process, with all its parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum TaskSpec {
    /// Before each start of a postgres server: initdb once, ownership, stale pid file.
    PostgresInitDb(PgServer),
    /// Health of a postgres server: a superuser login and `SELECT 1`.
    PostgresReady(PgServer),
    /// `NAME-init`: one role + database per consumer, extensions, CONNECT privileges.
    PostgresInit(Box<PgConfig>),
    /// Rotation of a role's password (`ALTER ROLE … PASSWORD`).
    PostgresRotate(PgRotate),
    /// Before each start of an object store: its data dir, owned by the unit's user.
    ObjectsDataDir(DataDirSpec),
    /// objects-init: bucket, bucket policy, CORS.
    ObjectsInit(InitSpec),
    /// `NAME-provision`: LobeChat's OIDC client in Logto and the air-gap policy.
    LogtoProvision(ProvisionSpec),
    /// A closure given by a library embedder (tests, tools): never produced by a config;
    /// compared and printed by its name only.
    Custom(CustomTask),
}

impl TaskSpec {
    /// Runs the task; the future owns everything it needs.
    pub fn run(&self, ctx: TaskContext) -> BoxFuture<Result<(), TaskError>> {
        crate::stack::tasks::run(self, ctx)
    }

    /// A custom task from an async closure (see [`TaskSpec::Custom`]).
    pub fn custom<F, Fut, E>(name: impl Into<String>, f: F) -> Self
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<CustomError> + 'static,
    {
        TaskSpec::Custom(CustomTask {
            name: name.into(),
            run: Arc::new(move |ctx| {
                let fut = f(ctx);
                Box::pin(async move { fut.await.map_err(Into::into) })
            }),
        })
    }

    /// One line for `check`: the step and its main parameters.
    pub fn summary(&self) -> String {
        match self {
            TaskSpec::PostgresInitDb(c) => match &c.container {
                Some(img) => format!(
                    "postgres prepare: initdb once in {} into {} as uid {}, runtime switch and stale postmaster.pid checks",
                    img.image,
                    c.data_dir.display(),
                    img.uid
                ),
                None => format!(
                    "postgres prepare: initdb once into {} as {}, runtime switch and stale postmaster.pid checks",
                    c.data_dir.display(),
                    c.user.as_deref().unwrap_or("the daemon's user")
                ),
            },
            TaskSpec::PostgresReady(c) => {
                format!("postgres health: SELECT 1 on 127.0.0.1:{}", c.port)
            }
            TaskSpec::PostgresInit(c) => format!(
                "postgres init: roles+databases {:?}, extensions {:?}",
                c.databases, c.extensions
            ),
            TaskSpec::PostgresRotate(r) => format!(
                "postgres rotate: ALTER ROLE {} on 127.0.0.1:{}",
                r.role, r.server.port
            ),
            TaskSpec::ObjectsDataDir(d) => {
                format!("create {} owned by the unit user", d.dir.display())
            }
            TaskSpec::ObjectsInit(s) => {
                format!("objects-init: bucket {} at {}", s.bucket, s.endpoint)
            }
            TaskSpec::LogtoProvision(p) => format!(
                "provision Logto ({}): OIDC client for {}",
                p.logto,
                p.app_url.as_deref().unwrap_or("none")
            ),
            TaskSpec::Custom(c) => format!("custom {}", c.name),
        }
    }
}

/// `secrets rotate` of a postgres role's password.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PgRotate {
    pub server: PgServer,
    /// The superuser or a consumer role.
    pub role: String,
}

/// An embedder's closure, named.
#[derive(Clone)]
pub struct CustomTask {
    /// Identifies the task: two custom tasks with the same name are the same definition.
    pub name: String,
    pub run: Arc<TaskFn>,
}

impl fmt::Debug for CustomTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CustomTask({})", self.name)
    }
}

impl PartialEq for CustomTask {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Serialize for CustomTask {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("CustomTask", 1)?;
        st.serialize_field("name", &self.name)?;
        st.end()
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
