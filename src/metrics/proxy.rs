//! The proxy's counters (kept by the proxy itself) as a metrics source.

use super::MetricSource;
use crate::proxy::ProxyMetrics;
use prometheus_client::registry::Registry;

impl MetricSource for ProxyMetrics {
    fn collect(&self, registry: &mut Registry) {
        // Clones share the live series, so registering per scrape costs no copy of values.
        self.register(registry);
    }
}

#[cfg(test)]
mod tests {
    use super::super::Metrics;
    use crate::proxy::ProxyMetrics;
    use std::sync::Arc;

    #[test]
    fn proxy_series_render_with_the_rest() {
        let m = Metrics::new();
        m.add(Arc::new(ProxyMetrics::default()));
        m.add(Arc::new(|r: &mut prometheus_client::registry::Registry| {
            r.register(
                "x",
                "x",
                prometheus_client::metrics::gauge::Gauge::<i64>::default(),
            )
        }));
        let text = m.render();
        assert!(
            text.contains("# TYPE proxy_open_connections gauge"),
            "{text}"
        );
        assert!(text.contains("proxy_open_connections 0"), "{text}");
        assert!(
            text.contains("proxy_tls_handshake_failures_total 0"),
            "{text}"
        );
        assert!(text.contains("\nx 0\n"), "{text}");
    }
}
