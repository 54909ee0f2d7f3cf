//! The runner behind [`TaskSpec`]: one match from a task's data to the preset code that
//! does it, and the error every task can end with.

use crate::plan::{BoxFuture, CustomError, TaskContext, TaskSpec};
use crate::stack::{logto, objects, postgres};

/// Why a task failed; the message is the one line `status` and the unit's log show.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(transparent)]
    Postgres(#[from] postgres::PgError),
    #[error(transparent)]
    ObjectsDataDir(#[from] objects::datadir::DataDirError),
    #[error(transparent)]
    ObjectsInit(#[from] objects::init::InitError),
    #[error(transparent)]
    Logto(#[from] logto::provision::ProvisionError),
    #[error("{source}")]
    Custom {
        task: String,
        #[source]
        source: CustomError,
    },
}

/// Runs `spec`; the returned future owns a copy of its parameters.
pub fn run(spec: &TaskSpec, ctx: TaskContext) -> BoxFuture<Result<(), TaskError>> {
    let spec = spec.clone();
    Box::pin(async move {
        match spec {
            TaskSpec::PostgresInitDb(pg) => Ok(postgres::prepare(&pg, &ctx).await?),
            TaskSpec::PostgresReady(pg) => Ok(postgres::probe(&pg, &ctx).await?),
            TaskSpec::PostgresInit(pg) => Ok(postgres::init(&pg, &ctx).await?),
            TaskSpec::PostgresRotate(r) => {
                Ok(postgres::rotate_role(&r.server, &ctx, &r.role).await?)
            }
            TaskSpec::ObjectsDataDir(d) => Ok(objects::datadir::prepare(&d, &ctx)?),
            TaskSpec::ObjectsInit(s) => Ok(objects::init::run(&s, &ctx).await?),
            TaskSpec::LogtoProvision(p) => Ok(logto::provision::run(&p, &ctx).await.map(|_| ())?),
            TaskSpec::Custom(c) => (c.run)(ctx).await.map_err(|source| TaskError::Custom {
                task: c.name.clone(),
                source,
            }),
        }
    })
}
