//! Prometheus exposition (`prometheus-client`, OpenMetrics text): units, their CPU and
//! memory, GPUs, proxy.
//!
//! Every scrape builds a fresh registry from the current snapshots, so a series exists
//! exactly while its subject does (a GPU that is gone, or monitoring that is unavailable,
//! leaves no stale series behind). Metric names: the "Metrics" section of README.md.

mod gpu;
mod proxy;
mod serve;
mod units;
mod usage;

pub use gpu::GpuMetrics;
pub use serve::{serve, serve_with, MetricsError, ServeGuard, CONTENT_TYPE};
pub use units::{UnitMetrics, UnitRow, UnitRows, UNIT_STATES};
pub use usage::UsageMetrics;

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use std::sync::{Arc, Mutex};

/// Something that adds its series to a scrape.
pub trait MetricSource: Send + Sync + 'static {
    /// Registers this source's families, filled with current values.
    fn collect(&self, registry: &mut Registry);
}

impl<F: Fn(&mut Registry) + Send + Sync + 'static> MetricSource for F {
    fn collect(&self, registry: &mut Registry) {
        self(registry)
    }
}

/// The daemon's metrics: a list of sources rendered together.
#[derive(Default, Clone)]
pub struct Metrics {
    sources: Arc<Mutex<Vec<Arc<dyn MetricSource>>>>,
}

impl Metrics {
    /// No sources yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a source (units, GPU, the proxy's counters, …).
    pub fn add(&self, source: Arc<dyn MetricSource>) {
        self.sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(source);
    }

    /// The exposition text of every source, ending in `# EOF`.
    pub fn render(&self) -> String {
        let sources = self
            .sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut registry = Registry::default();
        for s in &sources {
            s.collect(&mut registry);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &registry);
        out
    }
}

/// The daemon's metrics: units from the supervisor, GPUs from the monitor (the proxy adds
/// its counters with `add`).
pub fn for_daemon(
    handle: &crate::supervisor::Handle,
    gpu: &crate::gpu::GpuMonitor,
    alert_used_percent: u8,
) -> Metrics {
    let m = Metrics::new();
    m.add(Arc::new(UnitMetrics(handle.clone())));
    m.add(Arc::new(GpuMetrics::new(
        gpu.subscribe(),
        alert_used_percent,
    )));
    m
}
