//! Binding the socket and serving connections.

use super::peer::Admins;
use super::routes::{error, route, ControlCtx};
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
    let admins = Arc::new(Admins::new(group));
    match admins.gid {
        Some(gid) => {
            if let Err(e) = std::os::unix::fs::chown(path, None, Some(gid)) {
                tracing::warn!(
                    "cannot give {} to group {}: {e}",
                    path.display(),
                    admins.group
                );
            }
        }
        None if group.is_some() => {
            tracing::warn!("control group {:?} does not exist; only root and the daemon's user can use the socket", admins.group);
        }
        None => {}
    }
    let task = tokio::spawn(accept_loop(listener, admins, ctx));
    Ok(ControlServer {
        path: path.to_path_buf(),
        task,
    })
}

/// Serves each connection: the full API to admins, 403 to anyone else.
async fn accept_loop(listener: UnixListener, admins: Arc<Admins>, ctx: Arc<ControlCtx>) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("control socket accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let refusal = match stream.peer_cred() {
            Ok(cred) => admins.refusal(&cred).inspect(|_| {
                tracing::warn!(uid = cred.uid(), pid = ?cred.pid(), "control: refused a peer outside group {}", admins.group);
            }),
            Err(e) => Some(format!("permission denied: cannot identify the peer: {e}")),
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let ctx = ctx.clone();
                let refusal = refusal.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(match refusal {
                        Some(why) => error(hyper::StatusCode::FORBIDDEN, why),
                        None => route(req, ctx).await,
                    })
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
