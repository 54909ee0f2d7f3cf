//! What the poller publishes: one reading of every GPU, with process memory attributed to
//! units. Serializable because the control socket hands it to `prometheus-stack gpu`.

use serde::{Deserialize, Serialize};

/// Whether GPU readings exist, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "reason")]
pub enum Availability {
    /// `[gpu].enabled = "off"`.
    Disabled,
    /// NVML is loading; no reading yet.
    Starting,
    /// Readings below are current.
    Available,
    /// No library, no GPU or a driver error; the text is the one line operators see.
    Unavailable(String),
}

/// One reading of every GPU plus the per-unit view derived from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuSnapshot {
    pub availability: Availability,
    /// Milliseconds since the Unix epoch when this reading was taken (0 = none yet).
    pub taken_at_ms: u64,
    pub gpus: Vec<GpuReading>,
    /// GPU memory per unit (only units with GPU processes or a GPU policy).
    pub units: Vec<UnitGpu>,
    /// Alerts (`alert_used_percent`), vanished GPUs and per-call errors, one line each.
    pub warnings: Vec<String>,
}

impl Default for GpuSnapshot {
    fn default() -> Self {
        GpuSnapshot {
            availability: Availability::Starting,
            taken_at_ms: 0,
            gpus: Vec::new(),
            units: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

impl GpuSnapshot {
    /// A snapshot that only says why there are no readings.
    pub fn with_availability(availability: Availability) -> Self {
        GpuSnapshot {
            availability,
            ..Default::default()
        }
    }

    /// True when the GPU figures are current.
    pub fn is_available(&self) -> bool {
        self.availability == Availability::Available
    }

    /// GPU memory a unit uses, summed over all GPUs (None when it uses none or there are no readings).
    pub fn unit_used(&self, unit: &str) -> Option<u64> {
        self.units
            .iter()
            .find(|u| u.unit == unit)
            .map(|u| u.used_bytes)
    }

    /// The per-unit entry for `unit`.
    pub fn unit(&self, unit: &str) -> Option<&UnitGpu> {
        self.units.iter().find(|u| u.unit == unit)
    }

    /// The one line describing monitoring when it is not available (for `status`).
    pub fn unavailable_line(&self) -> Option<String> {
        match &self.availability {
            Availability::Unavailable(why) => Some(format!("GPU monitoring unavailable: {why}")),
            _ => None,
        }
    }
}

/// One GPU as NVML reports it. Optional fields are ones the card or driver does not support.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuReading {
    pub index: u32,
    pub name: String,
    pub uuid: String,
    pub memory_total: u64,
    pub memory_used: u64,
    pub memory_free: u64,
    pub memory_reserved: u64,
    /// Percent of time a kernel ran during the last sample period.
    pub utilization_gpu: Option<u32>,
    /// Percent of time device memory was read or written.
    pub utilization_memory: Option<u32>,
    pub temperature_c: Option<u32>,
    pub power_mw: Option<u32>,
    pub processes: Vec<GpuProcess>,
    /// Calls that failed for this card (e.g. the process list), one line each.
    pub errors: Vec<String>,
}

impl GpuReading {
    /// Used memory as a percentage of the total (0 when the total is unknown).
    pub fn used_percent(&self) -> f64 {
        if self.memory_total == 0 {
            0.0
        } else {
            self.memory_used as f64 * 100.0 / self.memory_total as f64
        }
    }
}

/// A process with a compute context on one GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuProcess {
    pub pid: u32,
    /// None where the driver cannot tell (e.g. some MIG and WDDM setups).
    pub used_bytes: Option<u64>,
    /// The unit whose process tree or container holds this pid.
    pub unit: Option<String>,
}

/// GPU memory of one unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitGpu {
    pub unit: String,
    /// Sum over every GPU and every process of the unit.
    pub used_bytes: u64,
    /// Per GPU index: bytes used there.
    pub per_gpu: Vec<(u32, u64)>,
    pub pids: Vec<u32>,
    /// `gpu.max_used` of the unit, if any.
    pub max_used: Option<u64>,
    /// `gpu.min_free` of the unit, if any.
    pub min_free: Option<u64>,
    /// Restarts the `max_used` watchdog has ordered since the daemon started.
    pub policy_restarts: u64,
}

/// Bytes as operators read them: "8 GiB", "3.1 GiB", "512 MiB".
pub fn human_bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (name, size) in UNITS {
        if n >= size {
            let v = n as f64 / size as f64;
            let text = format!("{v:.1}");
            let text = text.strip_suffix(".0").unwrap_or(&text);
            return format!("{text} {name}");
        }
    }
    format!("{n} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_like_the_issue_says() {
        assert_eq!(human_bytes(8 << 30), "8 GiB");
        assert_eq!(human_bytes(3_328_599_654), "3.1 GiB");
        assert_eq!(human_bytes(512 << 20), "512 MiB");
        assert_eq!(human_bytes(12), "12 B");
    }
}
