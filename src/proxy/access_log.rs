//! One access log line per request through tracing (target `proxy::access`), written
//! when the response body ends so it carries the byte count and full duration.

use super::metrics::{ProxyMetrics, SiteName};
use hyper::Method;
use std::time::Instant;

/// Target of access log events; filter it with RUST_LOG=proxy::access=off.
pub const ACCESS_TARGET: &str = "proxy::access";

/// What the log line and the metrics need, gathered while handling the request.
pub(crate) struct AccessRecord {
    pub method: Method,
    pub host: String,
    /// Path without the query string (queries carry tokens and presigned signatures).
    pub path: String,
    pub status: u16,
    /// `unit host:port` / `host:port` / `-` for the proxy's own answers.
    pub upstream: std::sync::Arc<str>,
    pub site: SiteName,
    pub start: Instant,
    pub metrics: ProxyMetrics,
}

impl AccessRecord {
    /// Emits the line and the metrics.
    pub fn finish(self, bytes: u64) {
        let elapsed = self.start.elapsed();
        self.metrics
            .observe(&self.site, self.status, elapsed, bytes);
        tracing::info!(
            target: ACCESS_TARGET,
            method = %self.method,
            host = %self.host,
            path = %self.path,
            status = self.status,
            bytes,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            upstream = %self.upstream,
        );
    }
}
