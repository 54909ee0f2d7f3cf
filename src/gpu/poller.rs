//! The poller: a dedicated OS thread (NVML calls block, sometimes for a second on a cold
//! driver) that reads every GPU each `[gpu].interval`, attributes processes to units and
//! publishes a `GpuSnapshot` on a watch channel.

use super::attribution::{Attributor, UnitProc};
use super::nvml::{GpuSource, SourceReading};
use super::policy::used_alerts;
use super::snapshot::{Availability, GpuReading, GpuSnapshot, UnitGpu};
use super::{GpuError, Shared};
use crate::config::model::GpuEnabled;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// Opens the GPU source on the poller thread (so a slow `nvmlInit` blocks nobody).
pub type OpenSource = Box<dyn FnOnce() -> Result<Box<dyn GpuSource>, GpuError> + Send>;

/// What the poller thread needs.
pub(crate) struct Poller {
    pub interval: Duration,
    pub alert_percent: u8,
    pub enabled: GpuEnabled,
    pub shared: Arc<Shared>,
    pub tx: Arc<watch::Sender<GpuSnapshot>>,
}

impl Poller {
    /// Runs until `stop` is dropped (the monitor went away).
    pub fn run(self, open: OpenSource, stop: Receiver<()>) {
        let mut source = match open() {
            Ok(s) => {
                tracing::info!("GPU monitoring: {}", s.describe());
                s
            }
            Err(e) => {
                let line = e.to_string();
                // One line, and nothing else changes: units start, metrics omit GPU series.
                if self.enabled == GpuEnabled::On {
                    tracing::warn!("GPU monitoring unavailable: {line} ([gpu].enabled = \"on\")");
                } else {
                    tracing::info!("GPU monitoring unavailable: {line}");
                }
                self.tx
                    .send_replace(GpuSnapshot::with_availability(Availability::Unavailable(
                        line,
                    )));
                return;
            }
        };
        let mut attributor = Attributor::default();
        // uuid → "GPU i (name, uuid)", for reporting cards that disappear.
        let mut known: BTreeMap<String, String> = BTreeMap::new();
        let mut was_failing = false;
        let mut ever_ok = false;
        loop {
            let snap = match source.read() {
                Ok(reading) => {
                    ever_ok = true;
                    if was_failing {
                        tracing::info!("GPU monitoring available again");
                        was_failing = false;
                    }
                    self.build(reading, &mut attributor, &mut known)
                }
                Err(e) => {
                    if !was_failing {
                        // No GPU at all under "auto" is a fact, not a problem; losing
                        // cards that were there, or missing them under "on", is.
                        if ever_ok || self.enabled == GpuEnabled::On {
                            tracing::warn!("GPU monitoring unavailable: {e}");
                        } else {
                            tracing::info!("GPU monitoring unavailable: {e}");
                        }
                        was_failing = true;
                    }
                    GpuSnapshot {
                        taken_at_ms: now_ms(),
                        ..GpuSnapshot::with_availability(Availability::Unavailable(e.to_string()))
                    }
                }
            };
            self.tx.send_replace(snap);
            match stop.recv_timeout(self.interval) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return,
            }
        }
    }

    /// Labels each GPU process with its unit and sums memory per unit; units with a GPU
    /// policy appear even when they hold no GPU memory.
    fn per_unit(
        &self,
        gpus: &mut [GpuReading],
        owners: &HashMap<u32, String>,
        units: &[UnitProc],
    ) -> BTreeMap<String, UnitGpu> {
        let policies = self.shared.policies();
        let restarts = self.shared.restart_counts();
        let mut per_unit: BTreeMap<String, UnitGpu> = BTreeMap::new();
        let fresh = |name: &str| {
            let pol = policies.get(name);
            UnitGpu {
                unit: name.to_string(),
                used_bytes: 0,
                per_gpu: Vec::new(),
                pids: Vec::new(),
                max_used: pol.and_then(|p| p.max_used),
                min_free: pol.and_then(|p| p.min_free),
                policy_restarts: restarts.get(name).copied().unwrap_or(0),
            }
        };
        for g in gpus.iter_mut() {
            for p in &mut g.processes {
                p.unit = owners.get(&p.pid).cloned();
                let Some(unit) = &p.unit else { continue };
                let e = per_unit.entry(unit.clone()).or_insert_with(|| fresh(unit));
                let bytes = p.used_bytes.unwrap_or(0);
                e.used_bytes += bytes;
                match e.per_gpu.iter_mut().find(|(i, _)| *i == g.index) {
                    Some((_, b)) => *b += bytes,
                    None => e.per_gpu.push((g.index, bytes)),
                }
                if !e.pids.contains(&p.pid) {
                    e.pids.push(p.pid);
                }
            }
        }
        for u in units {
            if policies.contains_key(&u.name) {
                per_unit
                    .entry(u.name.clone())
                    .or_insert_with(|| fresh(&u.name));
            }
        }
        per_unit
    }

    fn build(
        &self,
        reading: SourceReading,
        attributor: &mut Attributor,
        known: &mut BTreeMap<String, String>,
    ) -> GpuSnapshot {
        let SourceReading { mut gpus, problems } = reading;
        let units = self.shared.unit_pids();
        let pids: Vec<u32> = gpus
            .iter()
            .flat_map(|g| g.processes.iter().map(|p| p.pid))
            .collect();
        let owners = attributor.attribute(&units, &pids);

        let per_unit = self.per_unit(&mut gpus, &owners, &units);
        let mut warnings = device_warnings(&gpus, known);
        warnings.extend(problems);
        warnings.extend(attributor.warnings.iter().cloned());

        let mut snap = GpuSnapshot {
            availability: Availability::Available,
            taken_at_ms: now_ms(),
            gpus,
            units: per_unit.into_values().collect(),
            warnings: Vec::new(),
        };
        let alerts = used_alerts(&snap, self.alert_percent);
        let prev = self.tx.borrow().warnings.clone();
        for w in alerts.iter().chain(warnings.iter()) {
            // Log each warning when it appears, not on every reading.
            if !prev.contains(w) {
                tracing::warn!("{w}");
            }
        }
        snap.warnings = alerts;
        snap.warnings.extend(warnings);
        snap
    }
}

/// Cards that disappeared since an earlier reading, and per-card NVML errors.
fn device_warnings(gpus: &[GpuReading], known: &mut BTreeMap<String, String>) -> Vec<String> {
    let mut warnings = Vec::new();
    let present: HashSet<&str> = gpus.iter().map(|g| g.uuid.as_str()).collect();
    for (uuid, label) in known.iter() {
        if !present.contains(uuid.as_str()) {
            warnings.push(format!("{label} disappeared: no longer reported by NVML"));
        }
    }
    for g in gpus {
        known.insert(
            g.uuid.clone(),
            format!("GPU {} ({}, {})", g.index, g.name, g.uuid),
        );
        for e in &g.errors {
            warnings.push(format!("GPU {}: {e}", g.index));
        }
    }
    warnings
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
