//! Unit resource series from the usage sampler: CPU seconds (a counter) and resident
//! memory of each unit's process tree.

use super::MetricSource;
use crate::usage::UsageMonitor;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

type Labels = Vec<(String, String)>;

/// `prometheus_stack_unit_cpu_seconds_total` and `prometheus_stack_unit_memory_bytes`.
pub struct UsageMetrics(pub UsageMonitor);

impl MetricSource for UsageMetrics {
    fn collect(&self, registry: &mut Registry) {
        let table = self.0.table();
        let cpu = Family::<Labels, Counter<f64, AtomicU64>>::default();
        let memory = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        for (name, u) in table.iter() {
            let unit = vec![("unit".to_string(), name.clone())];
            cpu.get_or_create(&unit).inc_by(u.cpu_seconds);
            if let Some(m) = u.memory_bytes {
                memory.get_or_create(&unit).set(m as f64);
            }
        }
        registry.register(
            "prometheus_stack_unit_cpu_seconds",
            "CPU seconds used by the unit's process tree since the daemon started",
            cpu,
        );
        registry.register(
            "prometheus_stack_unit_memory_bytes",
            "Resident memory of the unit's process tree (absent when not running)",
            memory,
        );
    }
}
