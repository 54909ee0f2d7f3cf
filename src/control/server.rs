//! Binding the socket and serving connections.

use super::routes::{route, ControlCtx};
use hyper_util::rt::TokioIo;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::UnixListener;

/// Errors opening the control socket.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("another daemon already answers on {0}; stop it first (or set [control].socket)")]
    InUse(PathBuf),
    #[error("cannot create the control socket {path}: {source} (check [control].socket and the folder's permissions)")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A running control server; dropping it does not stop it, `close` does.
pub struct ControlServer {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl ControlServer {
    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting and removes the socket file.
    pub fn close(self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Fails when a daemon already answers on `path` (checked before anything is started or
/// cleaned up, so a second `run` never touches the first one's units).
pub async fn ensure_free(path: &Path) -> Result<(), ControlError> {
    if path.exists() && tokio::net::UnixStream::connect(path).await.is_ok() {
        return Err(ControlError::InUse(path.to_path_buf()));
    }
    Ok(())
}

/// Binds `path` (replacing a stale socket) and serves the API on it.
pub async fn serve(
    path: &Path,
    group: Option<&str>,
    ctx: Arc<ControlCtx>,
) -> Result<ControlServer, ControlError> {
    let berr = |source| ControlError::Bind {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(berr)?;
    }
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(ControlError::InUse(path.to_path_buf()));
        }
        let _ = std::fs::remove_file(path);
    }
    let listener = UnixListener::bind(path).map_err(berr)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(berr)?;
    let group_name = group.unwrap_or("prometheus-stack");
    match nix::unistd::Group::from_name(group_name) {
        Ok(Some(g)) => {
            if let Err(e) = std::os::unix::fs::chown(path, None, Some(g.gid.as_raw())) {
                tracing::warn!("cannot give {} to group {group_name}: {e}", path.display());
            }
        }
        _ if group.is_some() => {
            tracing::warn!("control group {group_name:?} does not exist; only the daemon's user can use the socket");
        }
        _ => {}
    }
    let task = tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!("control socket accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let ctx = ctx.clone();
                    async move { Ok::<_, std::convert::Infallible>(route(req, ctx).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(ControlServer {
        path: path.to_path_buf(),
        task,
    })
}
