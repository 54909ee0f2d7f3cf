//! GPU series. Card-level names follow DCGM-exporter (`DCGM_FI_DEV_*`, labels `gpu`,
//! `UUID`, `device`, `modelName`, same units) so existing dashboards work; per-unit and
//! per-process series are ours.

use super::MetricSource;
use crate::gpu::GpuSnapshot;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use tokio::sync::watch;

type Labels = Vec<(String, String)>;
type IntFamily = Family<Labels, Gauge>;

/// GPU series from the poller's watch.
pub struct GpuMetrics {
    rx: watch::Receiver<GpuSnapshot>,
    alert_used_percent: u8,
}

impl GpuMetrics {
    /// Reads the monitor's snapshots; `alert_used_percent` as in `[gpu]` (0 = off).
    pub fn new(rx: watch::Receiver<GpuSnapshot>, alert_used_percent: u8) -> Self {
        GpuMetrics {
            rx,
            alert_used_percent,
        }
    }
}

const MIB: u64 = 1 << 20;

impl MetricSource for GpuMetrics {
    fn collect(&self, registry: &mut Registry) {
        let snap = self.rx.borrow().clone();
        let up = Gauge::<i64>::default();
        up.set(i64::from(snap.is_available()));
        registry.register(
            "prometheus_stack_gpu_monitoring_available",
            "1 when NVML readings are current, 0 when GPU monitoring is off or unavailable",
            up,
        );
        if !snap.is_available() {
            // The contract: no GPU series at all without readings.
            return;
        }
        let cards = CardFamilies::register(registry);
        for g in &snap.gpus {
            cards.fill(g, self.alert_used_percent);
        }
        unit_series(registry, &snap);
    }
}

/// A new integer family registered under `name`.
fn fam(reg: &mut Registry, name: &str, help: &str) -> IntFamily {
    let f = IntFamily::default();
    reg.register(name, help, f.clone());
    f
}

/// The per-card families (DCGM names) and the per-process one.
struct CardFamilies {
    fb_total: IntFamily,
    fb_used: IntFamily,
    fb_free: IntFamily,
    fb_reserved: IntFamily,
    util: IntFamily,
    mem_util: IntFamily,
    temp: IntFamily,
    power: Family<Labels, Gauge<f64, AtomicU64>>,
    alert: IntFamily,
    proc_used: IntFamily,
}

impl CardFamilies {
    /// Registers every card family, in exposition order.
    fn register(r: &mut Registry) -> Self {
        let fb_total = fam(
            r,
            "DCGM_FI_DEV_FB_TOTAL",
            "Framebuffer memory total (in MiB)",
        );
        let fb_used = fam(r, "DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB)");
        let fb_free = fam(r, "DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB)");
        let fb_reserved = fam(
            r,
            "DCGM_FI_DEV_FB_RESERVED",
            "Framebuffer memory reserved (in MiB)",
        );
        let util = fam(r, "DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %)");
        let mem_util = fam(r, "DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %)");
        let temp = fam(r, "DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C)");
        let power = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        r.register(
            "DCGM_FI_DEV_POWER_USAGE",
            "Power draw (in W)",
            power.clone(),
        );
        let alert = fam(
            r,
            "prometheus_stack_gpu_memory_alert",
            "1 while the card's used memory is at or above [gpu].alert_used_percent",
        );
        let proc_used = fam(
            r,
            "prometheus_stack_gpu_process_memory_used_bytes",
            "GPU memory of one compute process (unit label empty when no unit owns it)",
        );
        CardFamilies {
            fb_total,
            fb_used,
            fb_free,
            fb_reserved,
            util,
            mem_util,
            temp,
            power,
            alert,
            proc_used,
        }
    }

    /// One card's series.
    fn fill(&self, g: &crate::gpu::GpuReading, alert_used_percent: u8) {
        let card = vec![
            ("gpu".to_string(), g.index.to_string()),
            ("UUID".to_string(), g.uuid.clone()),
            ("device".to_string(), format!("nvidia{}", g.index)),
            ("modelName".to_string(), g.name.clone()),
        ];
        let mib = |b: u64| (b / MIB) as i64;
        self.fb_total.get_or_create(&card).set(mib(g.memory_total));
        self.fb_used.get_or_create(&card).set(mib(g.memory_used));
        self.fb_free.get_or_create(&card).set(mib(g.memory_free));
        self.fb_reserved
            .get_or_create(&card)
            .set(mib(g.memory_reserved));
        if let Some(u) = g.utilization_gpu {
            self.util.get_or_create(&card).set(i64::from(u));
        }
        if let Some(u) = g.utilization_memory {
            self.mem_util.get_or_create(&card).set(i64::from(u));
        }
        if let Some(t) = g.temperature_c {
            self.temp.get_or_create(&card).set(i64::from(t));
        }
        if let Some(mw) = g.power_mw {
            self.power.get_or_create(&card).set(f64::from(mw) / 1000.0);
        }
        let over = alert_used_percent > 0
            && g.memory_total > 0
            && g.used_percent() >= f64::from(alert_used_percent);
        self.alert
            .get_or_create(&card[..2].to_vec())
            .set(i64::from(over));
        for p in &g.processes {
            let Some(bytes) = p.used_bytes else { continue };
            let mut l = card[..2].to_vec();
            l.push(("pid".into(), p.pid.to_string()));
            l.push(("unit".into(), p.unit.clone().unwrap_or_default()));
            self.proc_used.get_or_create(&l).set(bytes as i64);
        }
    }
}

/// Per-unit GPU series: memory per card, the `gpu.max_used` limit, watchdog restarts.
fn unit_series(registry: &mut Registry, snap: &GpuSnapshot) {
    let unit_used = fam(
        registry,
        "prometheus_stack_unit_gpu_memory_used_bytes",
        "GPU memory used by the unit's processes on one card",
    );
    let unit_limit = fam(
        registry,
        "prometheus_stack_unit_gpu_memory_limit_bytes",
        "The unit's gpu.max_used",
    );
    let unit_restarts = Family::<Labels, Counter>::default();
    registry.register(
        "prometheus_stack_unit_gpu_policy_restarts",
        "Restarts ordered by the gpu.max_used watchdog",
        unit_restarts.clone(),
    );
    for u in &snap.units {
        let unit = vec![("unit".to_string(), u.unit.clone())];
        for (idx, bytes) in &u.per_gpu {
            let mut l = unit.clone();
            l.push(("gpu".into(), idx.to_string()));
            if let Some(g) = snap.gpus.iter().find(|g| g.index == *idx) {
                l.push(("UUID".into(), g.uuid.clone()));
            }
            unit_used.get_or_create(&l).set(*bytes as i64);
        }
        if let Some(m) = u.max_used {
            unit_limit.get_or_create(&unit).set(m as i64);
        }
        if u.max_used.is_some() {
            unit_restarts.get_or_create(&unit).inc_by(u.policy_restarts);
        }
    }
}
