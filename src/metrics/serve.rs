//! The `[metrics].listen` HTTP listener: `GET /metrics`, nothing else.

use super::Metrics;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use tokio::net::TcpListener;

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

/// Binds `listen` and serves `/metrics` on a background task; returns the bound address.
pub async fn serve(metrics: Metrics, listen: &str) -> Result<SocketAddr, MetricsError> {
    let bind_err = |source| MetricsError::Bind {
        listen: listen.to_string(),
        source,
    };
    let listener = TcpListener::bind(listen).await.map_err(bind_err)?;
    let addr = listener.local_addr().map_err(bind_err)?;
    tracing::info!("metrics on http://{addr}/metrics");
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("metrics listener: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    continue;
                }
            };
            let m = metrics.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let m = m.clone();
                    async move { Ok::<_, std::convert::Infallible>(answer(&m, req)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
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
