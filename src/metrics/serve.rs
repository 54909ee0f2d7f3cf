//! The `[metrics].listen` HTTP listener: `GET /metrics`, nothing else.

use super::Metrics;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Content type of the exposition (OpenMetrics text, which Prometheus prefers).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Why the listener did not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("[metrics].listen = \"{listen}\": cannot listen: {source}")]
    Bind {
        listen: String,
        source: std::io::Error,
    },
}

/// Connections the listener takes at once when it is not given a shared limit.
const DEFAULT_MAX_CONNECTIONS: usize = 64;

/// What ties the listener to the daemon's lifetime: it stops accepting when `stop` is
/// cancelled, `tracker` counts its accept loop and connections (the daemon waits for
/// them), and each connection holds one permit of `limit` (the proxy's
/// `max_connections` when there is a proxy).
#[derive(Clone)]
pub struct ServeGuard {
    pub stop: CancellationToken,
    pub tracker: TaskTracker,
    pub limit: Arc<Semaphore>,
}

impl Default for ServeGuard {
    fn default() -> Self {
        ServeGuard {
            stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
            limit: Arc::new(Semaphore::new(DEFAULT_MAX_CONNECTIONS)),
        }
    }
}

/// Binds `listen` and serves `/metrics` on a background task; returns the bound address.
pub async fn serve(metrics: Metrics, listen: &str) -> Result<SocketAddr, MetricsError> {
    serve_with(metrics, listen, ServeGuard::default()).await
}

/// [`serve`] under `guard`: stops with it, counted by it.
pub async fn serve_with(
    metrics: Metrics,
    listen: &str,
    guard: ServeGuard,
) -> Result<SocketAddr, MetricsError> {
    let bind_err = |source| MetricsError::Bind {
        listen: listen.to_string(),
        source,
    };
    let listener = TcpListener::bind(listen).await.map_err(bind_err)?;
    let addr = listener.local_addr().map_err(bind_err)?;
    tracing::info!("metrics on http://{addr}/metrics");
    guard
        .tracker
        .clone()
        .spawn(accept_loop(listener, metrics, guard));
    Ok(addr)
}

/// Accepts until `guard.stop`, one permit and one tracked task per connection.
async fn accept_loop(listener: TcpListener, metrics: Metrics, guard: ServeGuard) {
    loop {
        let permit = tokio::select! {
            p = guard.limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = guard.stop.cancelled() => return,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("metrics listener: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    continue;
                }
            },
            _ = guard.stop.cancelled() => return,
        };
        let (m, stop) = (metrics.clone(), guard.stop.clone());
        guard.tracker.spawn(async move {
            let _permit = permit;
            let svc = hyper::service::service_fn(move |req| {
                let m = m.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&m, req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}

/// Answers one request (shared with the control socket's `GET /v1/metrics`).
pub fn answer(metrics: &Metrics, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let ok_method = req.method() == Method::GET || req.method() == Method::HEAD;
    let (status, ctype, body) = match req.uri().path() {
        "/metrics" if ok_method => (StatusCode::OK, CONTENT_TYPE, metrics.render()),
        "/metrics" => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "use GET\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: metrics are at /metrics\n".to_string(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = ctype.parse() {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}
