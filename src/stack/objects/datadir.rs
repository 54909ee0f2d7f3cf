//! The store's data dir before every start: created, given to the unit's user, mode 0750.

use crate::plan::TaskContext;
use serde::Serialize;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// What the prepare step of an object store makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataDirSpec {
    /// DATA_DIR/objects on the host.
    pub dir: PathBuf,
    /// The container's default `--user` (podman, no `user` set): the dir is given to it.
    pub image_owner: Option<(u32, u32)>,
}

/// Why the data dir could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("cannot create the store's data dir {}: {source}", dir.display())]
    Create {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot look up user {user:?}: {source}")]
    LookupUser { user: String, source: nix::Error },
    #[error("unknown user {user:?} (services.{unit}.user)")]
    UnknownUser { user: String, unit: String },
    #[error("cannot give {} to user {user:?}: {source}", dir.display())]
    Chown {
        dir: PathBuf,
        user: String,
        source: std::io::Error,
    },
    #[error("cannot set mode 0750 on {}: {source}", dir.display())]
    Chmod {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// Creates the dir and gives it to the user of the unit running the task.
pub fn prepare(spec: &DataDirSpec, ctx: &TaskContext) -> Result<(), DataDirError> {
    let dir = &spec.dir;
    std::fs::create_dir_all(dir).map_err(|source| DataDirError::Create {
        dir: dir.clone(),
        source,
    })?;
    // The operator's `user` is applied over the preset's unit: read it from the plan.
    let user = ctx.plan.unit(&ctx.unit).and_then(|u| u.user.clone());
    let unit_user = user.is_some();
    if let Some(user) = user {
        let u = nix::unistd::User::from_name(&user)
            .map_err(|source| DataDirError::LookupUser {
                user: user.clone(),
                source,
            })?
            .ok_or_else(|| DataDirError::UnknownUser {
                user: user.clone(),
                unit: ctx.unit.clone(),
            })?;
        std::os::unix::fs::chown(dir, Some(u.uid.as_raw()), Some(u.gid.as_raw())).map_err(
            |source| DataDirError::Chown {
                dir: dir.clone(),
                user,
                source,
            },
        )?;
    }
    if let (false, Some((uid, gid))) = (unit_user, spec.image_owner) {
        // Only root gives files away; a non-root dev run keeps its own (rootless podman
        // runs the container as that user: `runtime::podman` passes no default --user).
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(|source| {
                DataDirError::Chown {
                    dir: dir.clone(),
                    user: format!("{uid}:{gid}"),
                    source,
                }
            })?;
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750)).map_err(|source| {
        DataDirError::Chmod {
            dir: dir.clone(),
            source,
        }
    })
}
