//! The CLI's side of the control socket.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};

/// Errors talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no daemon answers on {0} (start it with `prometheus-stack run`, or pass --socket/--config)")]
    NoDaemon(PathBuf),
    #[error("permission denied on {0}: the control socket is for root and members of group {group:?} (or [control].group)", group = super::DEFAULT_ADMIN_GROUP)]
    Denied(PathBuf),
    #[error("talking to the daemon on {path}: {message}")]
    Protocol { path: PathBuf, message: String },
    /// The daemon answered with an error status.
    #[error("{message}")]
    Api { status: u16, message: String },
}

/// A client for one socket.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// A client of the daemon listening on `socket`.
    pub fn new(socket: impl AsRef<Path>) -> Self {
        Client {
            socket: socket.as_ref().to_path_buf(),
        }
    }

    fn perr(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::Protocol {
            path: self.socket.clone(),
            message: e.to_string(),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::PermissionDenied => ClientError::Denied(self.socket.clone()),
                _ => ClientError::NoDaemon(self.socket.clone()),
            })?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.perr(e))?;
        tokio::spawn(conn);
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "prometheus-stack")
            .body(Empty::<Bytes>::new())
            .map_err(|e| self.perr(e))?;
        let resp = send.send_request(req).await.map_err(|e| self.perr(e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.perr(e))?
            .to_bytes();
        Err(api_error(status, &body))
    }

    /// Sends a request and returns the whole body.
    pub async fn call(&self, method: Method, path: &str) -> Result<Bytes, ClientError> {
        let resp = self.send(method, path).await?;
        Ok(resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.perr(e))?
            .to_bytes())
    }

    /// GETs JSON.
    pub async fn get_json(&self, path: &str) -> Result<serde_json::Value, ClientError> {
        let b = self.call(Method::GET, path).await?;
        serde_json::from_slice(&b).map_err(|e| self.perr(e))
    }

    /// POSTs and parses the JSON answer.
    pub async fn post_json(&self, path: &str) -> Result<serde_json::Value, ClientError> {
        let b = self.call(Method::POST, path).await?;
        serde_json::from_slice(&b).map_err(|e| self.perr(e))
    }

    /// Streams a body chunk by chunk to `each` until the daemon ends it.
    pub async fn stream(&self, path: &str, mut each: impl FnMut(&[u8])) -> Result<(), ClientError> {
        let mut body = self.send(Method::GET, path).await?.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| self.perr(e))?;
            if let Some(d) = frame.data_ref() {
                each(d);
            }
        }
        Ok(())
    }
}

fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    ClientError::Api {
        status: status.as_u16(),
        message,
    }
}
