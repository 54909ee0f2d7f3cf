//! Counters the metrics endpoint exports: requests by site and status, latency,
//! bytes sent, open connections, TLS handshake failures, connections refused by the
//! per-client cap.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

/// A site label without a String copy per request.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub(crate) struct SiteName(pub Arc<str>);

impl EncodeLabelValue for SiteName {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    site: SiteName,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SiteLabels {
    site: SiteName,
}

type HistogramFamily = Family<SiteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms … ~33 s
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The proxy's metrics; clones share the same series.
#[derive(Debug, Clone)]
pub struct ProxyMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: HistogramFamily,
    bytes_sent: Family<SiteLabels, Counter>,
    open_connections: Gauge,
    handshake_failures: Counter,
    refused_per_ip: Counter,
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        ProxyMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            bytes_sent: Family::default(),
            open_connections: Gauge::default(),
            handshake_failures: Counter::default(),
            refused_per_ip: Counter::default(),
        }
    }
}

impl ProxyMetrics {
    /// Adds the proxy's series to `registry` (prefix `proxy_`).
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("proxy");
        r.register(
            "requests",
            "Requests answered, by site and status",
            self.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Time from request to the end of the response body, by site",
            self.duration.clone(),
        );
        r.register(
            "response_bytes",
            "Response body bytes sent, by site",
            self.bytes_sent.clone(),
        );
        r.register(
            "open_connections",
            "Client connections open now",
            self.open_connections.clone(),
        );
        r.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out",
            self.handshake_failures.clone(),
        );
        r.register(
            "connections_refused_per_ip",
            "Connections closed at once because their client held max_conns_per_ip",
            self.refused_per_ip.clone(),
        );
    }

    /// Records one finished request.
    pub(crate) fn observe(&self, site: &SiteName, status: u16, elapsed: Duration, bytes: u64) {
        self.requests
            .get_or_create(&RequestLabels {
                site: site.clone(),
                status,
            })
            .inc();
        let sl = SiteLabels { site: site.clone() };
        self.duration
            .get_or_create(&sl)
            .observe(elapsed.as_secs_f64());
        self.bytes_sent.get_or_create(&sl).inc_by(bytes);
    }

    /// Counts a connection until the guard drops.
    pub(crate) fn connection(&self) -> ConnectionGuard {
        self.open_connections.inc();
        ConnectionGuard(self.open_connections.clone())
    }

    pub(crate) fn handshake_failed(&self) {
        self.handshake_failures.inc();
    }

    pub(crate) fn refused_per_ip(&self) {
        self.refused_per_ip.inc();
    }

    /// Connections refused by `[proxy] max_conns_per_ip` so far.
    pub fn refused_per_ip_total(&self) -> u64 {
        self.refused_per_ip.get()
    }

    /// Open client connections now (tests, status).
    pub fn open_connections(&self) -> i64 {
        self.open_connections.get()
    }
}

/// Decrements the open-connection gauge on drop.
pub(crate) struct ConnectionGuard(Gauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
