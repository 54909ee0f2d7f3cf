//! Every endpoint of the control API, in one router so other pieces add their arms here
//! (e.g. `/v1/metrics`, `/v1/gpu`, `/v1/secrets/…`).
//!
//! - `GET  /v1/status` → the supervisor snapshot (`{"units":[…],"started_at":…,"ready":…}`)
//!   plus the plan's `"warnings":[…]`; each unit also gets `cpu_percent`, `cpu_seconds`
//!   and `memory_bytes` from the usage sampler (null before the first sample)
//! - `POST /v1/units/{name}/start|stop|restart` → `{"ok":true}`
//! - `GET  /v1/units/{name}/logs?n=N[&follow=1]` → text lines (streamed with follow)
//! - `POST /v1/reload` → the reload report, or 422 `{"error":…}` when the file is invalid
//! - `GET  /v1/gpu` → the GPU snapshot (cards, units, warnings; see `gpu::GpuSnapshot`)
//! - `GET  /v1/metrics` → the Prometheus exposition, as on `[metrics].listen`
//! - `GET  /v1/secrets` → names, ages, consumers (never values); `POST /v1/secrets/{name}/rotate`
//!
//! Errors are `{"error": "…"}` with a 4xx/5xx status.

use crate::supervisor::{Handle, SupervisorError};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::sync::Arc;

/// Response body of every endpoint.
pub type Body = BoxBody<Bytes, Infallible>;

/// What the endpoints work with; the daemon adds its other pieces here.
pub struct ControlCtx {
    pub handle: Handle,
    /// GPU readings for `GET /v1/gpu` (None: the endpoint answers "monitoring off").
    pub gpu: Option<tokio::sync::watch::Receiver<crate::gpu::GpuSnapshot>>,
    /// What `GET /v1/metrics` renders.
    pub metrics: Option<crate::metrics::Metrics>,
    /// Per-unit CPU and memory for `GET /v1/status` (None: the fields are null).
    pub usage: Option<crate::usage::UsageMonitor>,
    /// Scheduled backups for `GET /v1/status` (`"backup"`; None: absent).
    pub backup: Option<crate::backup::scheduled::BackupState>,
}

/// Dispatches one request.
pub async fn route(req: Request<Incoming>, ctx: Arc<ControlCtx>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let h = &ctx.handle;
    match (req.method(), segs.as_slice()) {
        (&Method::GET, ["v1", "status"]) => {
            // The plan's notes (e.g. "LobeChat uses the root S3 key") belong in status too.
            let mut v = serde_json::to_value(&*h.snapshot()).unwrap_or_default();
            v["warnings"] = serde_json::json!(h.plan().warnings);
            add_usage(&mut v, ctx.usage.as_ref());
            if let Some(b) = &ctx.backup {
                v["backup"] = serde_json::to_value(b.snapshot()).unwrap_or_default();
            }
            json(StatusCode::OK, &v)
        }
        (&Method::GET, ["v1", "gpu"]) => match &ctx.gpu {
            Some(rx) => json(StatusCode::OK, &*rx.borrow()),
            None => json(
                StatusCode::OK,
                &crate::gpu::GpuSnapshot::with_availability(crate::gpu::Availability::Disabled),
            ),
        },
        (&Method::GET, ["v1", "metrics"]) => {
            let body = ctx.metrics.as_ref().map(|m| m.render()).unwrap_or_default();
            Response::builder()
                .header("content-type", crate::metrics::CONTENT_TYPE)
                .body(Full::new(Bytes::from(body)).boxed())
                .expect("valid response")
        }
        (&Method::POST, ["v1", "reload"]) => match crate::supervisor::reload_from_source(h).await {
            Ok(r) => json(StatusCode::OK, &r),
            Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        },
        (&Method::POST, ["v1", "units", name, action]) => {
            let r = match *action {
                "start" => h.start(name),
                "stop" => h.stop(name).await,
                "restart" => h.restart(name).await,
                _ => return error(StatusCode::NOT_FOUND, format!("no action {action:?}")),
            };
            match r {
                Ok(()) => json(StatusCode::OK, &serde_json::json!({"ok": true})),
                Err(e) => sup_error(e),
            }
        }
        (&Method::GET, ["v1", "secrets"]) => super::secrets::list(h),
        (&Method::POST, ["v1", "secrets", name, "rotate"]) => {
            super::secrets::rotate_one(h, name).await
        }
        (&Method::GET, ["v1", "units", name, "logs"]) => {
            let n = param(&query, "n")
                .and_then(|v| v.parse().ok())
                .unwrap_or(100);
            let follow = param(&query, "follow").is_some_and(|v| v == "1" || v == "true");
            logs(h, name, n, follow)
        }
        _ => error(
            StatusCode::NOT_FOUND,
            format!("no endpoint {} {path}", req.method()),
        ),
    }
}

/// Puts each unit's latest usage sample into its status object.
fn add_usage(status: &mut serde_json::Value, usage: Option<&crate::usage::UsageMonitor>) {
    let table = usage.map(|u| u.table()).unwrap_or_default();
    for u in status["units"].as_array_mut().into_iter().flatten() {
        let row = u["name"].as_str().and_then(|n| table.get(n));
        u["cpu_percent"] = serde_json::json!(row.and_then(|r| r.cpu_percent));
        u["cpu_seconds"] = serde_json::json!(row.map(|r| r.cpu_seconds));
        u["memory_bytes"] = serde_json::json!(row.and_then(|r| r.memory_bytes));
    }
}

fn logs(h: &Handle, name: &str, n: usize, follow: bool) -> Response<Body> {
    // Subscribe before reading the tail so no line falls between the two.
    let rx = match h.follow(name) {
        Ok(rx) => rx,
        Err(e) => return sup_error(e),
    };
    let mut head = String::new();
    for l in h.logs(name, n).unwrap_or_default() {
        head.push_str(&l);
        head.push('\n');
    }
    if !follow {
        return text(head);
    }
    let first = futures_util::stream::once(async move { Ok(Frame::data(Bytes::from(head))) });
    let rest = futures_util::stream::unfold(rx, |mut rx| async move {
        use tokio::sync::broadcast::error::RecvError;
        let chunk = match rx.recv().await {
            Ok(l) => format!("{l}\n"),
            Err(RecvError::Lagged(k)) => format!("-- {k} lines skipped (reader too slow)\n"),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(Frame::data(Bytes::from(chunk))), rx))
    });
    use futures_util::StreamExt;
    let body = StreamBody::new(first.chain(rest));
    Response::builder()
        .header("content-type", "text/plain; charset=utf-8")
        .body(BodyExt::boxed(body))
        .expect("valid response")
}

fn param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn sup_error(e: SupervisorError) -> Response<Body> {
    let code = match e {
        SupervisorError::UnknownUnit(_) => StatusCode::NOT_FOUND,
        SupervisorError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(code, e.to_string())
}

/// A JSON response.
pub fn json<T: serde::Serialize + ?Sized>(code: StatusCode, v: &T) -> Response<Body> {
    let body =
        serde_json::to_vec(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}").into_bytes());
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)).boxed())
        .expect("valid response")
}

/// A plain-text response.
pub fn text(s: String) -> Response<Body> {
    Response::builder()
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(s)).boxed())
        .expect("valid response")
}

/// `{"error": …}` with a status.
pub fn error(code: StatusCode, msg: String) -> Response<Body> {
    json(code, &serde_json::json!({ "error": msg }))
}
