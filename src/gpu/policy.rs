//! Per-unit GPU memory policies: the `min_free` start gate, the `max_used` watchdog and
//! the `alert_used_percent` warnings. Pure decisions over a snapshot; the monitor wires
//! them to the supervisor.

use super::snapshot::{human_bytes, Availability, GpuSnapshot};
use crate::plan::GpuPolicy;
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub use crate::supervisor::Gate;

/// How long memory stays promised to a unit the gate let through, unless its processes
/// show that much in use sooner: model servers load weights for a while after start.
const PROMISE_HOLD: Duration = Duration::from_secs(60);

/// `min_free` against one snapshot: Ok when some GPU has `need` bytes free beyond
/// `promised` (memory granted to units still loading), else the reason the unit waits
/// ("waiting for GPU memory: need 8 GiB, free 3.1 GiB on GPU 0").
pub fn min_free_check(
    snap: &GpuSnapshot,
    need: u64,
    promised: &[(String, u64)],
) -> Result<(), String> {
    match &snap.availability {
        // Monitoring off or broken must not hold units hostage; the one unavailable line
        // already tells the operator the check is not enforced.
        Availability::Disabled | Availability::Unavailable(_) => Ok(()),
        Availability::Starting => Err("waiting for GPU memory: no GPU reading yet".into()),
        Availability::Available => {
            let held: u64 = promised.iter().map(|(_, b)| b).sum();
            let best = snap.gpus.iter().max_by_key(|g| g.memory_free);
            match best {
                Some(g) if g.memory_free.saturating_sub(held) >= need => Ok(()),
                Some(g) => {
                    let mut reason = format!(
                        "waiting for GPU memory: need {}, free {} on GPU {}",
                        human_bytes(need),
                        human_bytes(g.memory_free),
                        g.index
                    );
                    if held > 0 {
                        let names: Vec<&str> = promised.iter().map(|(u, _)| u.as_str()).collect();
                        reason.push_str(&format!(
                            " ({} promised to {}, still starting)",
                            human_bytes(held),
                            names.join(", ")
                        ));
                    }
                    Err(reason)
                }
                None => Err(format!(
                    "waiting for GPU memory: need {}, no GPU readable",
                    human_bytes(need)
                )),
            }
        }
    }
}

/// Tracks how long each unit has waited at the `min_free` gate, and the memory promised
/// to units it let through, so two units that each fit do not both start into a card
/// that holds only one of them.
#[derive(Debug, Default)]
pub struct MinFreeGate {
    /// unit → (first Wait, last poll).
    waits: HashMap<String, (Instant, Instant)>,
    /// unit → (bytes promised, when).
    promised: HashMap<String, (u64, Instant)>,
}

impl MinFreeGate {
    /// Decides for `unit` with policy `policy` at `now`.
    pub fn decide(
        &mut self,
        snap: &GpuSnapshot,
        unit: &str,
        policy: Option<&GpuPolicy>,
        now: Instant,
    ) -> Gate {
        let (need, timeout) = match policy {
            Some(GpuPolicy {
                min_free: Some(need),
                wait_timeout,
                ..
            }) => (*need, *wait_timeout),
            _ => return Gate::Open,
        };
        // A promise ends once the unit's processes hold the memory themselves (then the
        // reading counts it as used) or after PROMISE_HOLD.
        self.promised.retain(|u, (bytes, at)| {
            now.duration_since(*at) < PROMISE_HOLD && snap.unit_used(u).unwrap_or(0) < *bytes
        });
        let others: Vec<(String, u64)> = self
            .promised
            .iter()
            .filter(|(u, _)| u.as_str() != unit)
            .map(|(u, (bytes, _))| (u.clone(), bytes - snap.unit_used(u).unwrap_or(0)))
            .collect();
        match min_free_check(snap, need, &others) {
            Ok(()) => {
                self.waits.remove(unit);
                if snap.is_available() {
                    self.promised.insert(unit.to_string(), (need, now));
                }
                Gate::Open
            }
            Err(reason) => {
                let entry = self.waits.entry(unit.to_string()).or_insert((now, now));
                // A unit not polled for a while was stopped and started again: a new wait.
                if now.duration_since(entry.1) > Duration::from_secs(30) {
                    *entry = (now, now);
                }
                entry.1 = now;
                let waited = now.duration_since(entry.0);
                if waited >= timeout {
                    self.waits.remove(unit);
                    Gate::Fail(format!(
                        "{reason} after {} (gpu.wait_timeout)",
                        crate::config::Dur(timeout)
                    ))
                } else {
                    Gate::Wait(reason)
                }
            }
        }
    }
}

/// A restart the watchdog orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartOrder {
    pub unit: String,
    pub reason: String,
}

/// `max_used`: restarts a unit whose GPU memory stayed above its limit for `grace`.
#[derive(Debug, Default)]
pub struct MaxUsedWatch {
    over_since: HashMap<String, Instant>,
}

impl MaxUsedWatch {
    /// Looks at one snapshot; returns the restarts due now.
    pub fn observe(
        &mut self,
        snap: &GpuSnapshot,
        policies: &HashMap<String, GpuPolicy>,
        now: Instant,
    ) -> Vec<RestartOrder> {
        if !snap.is_available() {
            // No reading is no evidence either way: keep the timers as they are.
            return Vec::new();
        }
        let mut orders = Vec::new();
        for (unit, pol) in policies {
            let Some(limit) = pol.max_used else { continue };
            let used = snap.unit_used(unit).unwrap_or(0);
            if used <= limit {
                self.over_since.remove(unit);
                continue;
            }
            let since = *self.over_since.entry(unit.clone()).or_insert(now);
            if now.duration_since(since) >= pol.grace {
                orders.push(RestartOrder {
                    unit: unit.clone(),
                    reason: format!(
                        "GPU memory {} above gpu.max_used {} for {}",
                        human_bytes(used),
                        human_bytes(limit),
                        crate::config::Dur(pol.grace)
                    ),
                });
                // The old process may still show in the next reading: give the new one a
                // full grace period before judging it.
                self.over_since.insert(unit.clone(), now);
            }
        }
        orders
    }
}

/// `alert_used_percent`: one warning per GPU at or above the threshold (0 = off).
pub fn used_alerts(snap: &GpuSnapshot, percent: u8) -> Vec<String> {
    if percent == 0 {
        return Vec::new();
    }
    snap.gpus
        .iter()
        .filter(|g| g.memory_total > 0 && g.used_percent() >= f64::from(percent))
        .map(|g| {
            format!(
                "GPU {} ({}): memory {:.0}% used ({} of {}), alert at {}%",
                g.index,
                g.name,
                g.used_percent(),
                human_bytes(g.memory_used),
                human_bytes(g.memory_total),
                percent
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::snapshot::{GpuReading, UnitGpu};

    fn card(free: u64, total: u64) -> GpuReading {
        GpuReading {
            index: 0,
            name: "Test".into(),
            uuid: "GPU-0".into(),
            memory_total: total,
            memory_used: total - free,
            memory_free: free,
            memory_reserved: 0,
            utilization_gpu: None,
            utilization_memory: None,
            temperature_c: None,
            power_mw: None,
            processes: vec![],
            errors: vec![],
        }
    }

    fn snap(free: u64) -> GpuSnapshot {
        GpuSnapshot {
            availability: Availability::Available,
            gpus: vec![card(free, 80 << 30)],
            ..Default::default()
        }
    }

    fn policy(min_free: u64, wait: u64) -> GpuPolicy {
        GpuPolicy {
            min_free: Some(min_free),
            max_used: Some(10 << 30),
            grace: Duration::from_secs(10),
            wait_timeout: Duration::from_secs(wait),
        }
    }

    #[test]
    fn min_free_waits_with_the_reason_then_opens() {
        let mut g = MinFreeGate::default();
        let p = policy(8 << 30, 600);
        let t = Instant::now();
        let free = (3.1 * (1u64 << 30) as f64) as u64;
        assert_eq!(
            g.decide(&snap(free), "ollama", Some(&p), t),
            Gate::Wait("waiting for GPU memory: need 8 GiB, free 3.1 GiB on GPU 0".into())
        );
        assert_eq!(g.decide(&snap(9 << 30), "ollama", Some(&p), t), Gate::Open);
    }

    #[test]
    fn min_free_fails_after_wait_timeout() {
        let mut g = MinFreeGate::default();
        let p = policy(8 << 30, 20);
        let t = Instant::now();
        for s in 0..20 {
            let d = g.decide(&snap(1 << 30), "u", Some(&p), t + Duration::from_secs(s));
            assert!(matches!(d, Gate::Wait(_)), "{d:?}");
        }
        let d = g.decide(&snap(1 << 30), "u", Some(&p), t + Duration::from_secs(20));
        assert!(
            matches!(&d, Gate::Fail(r) if r.contains("after 20s")),
            "{d:?}"
        );
    }

    #[test]
    fn two_units_that_each_fit_do_not_both_start_into_one_card() {
        let mut g = MinFreeGate::default();
        let p = policy(8 << 30, 600);
        let t = Instant::now();
        let s = snap(10 << 30);
        assert_eq!(g.decide(&s, "a", Some(&p), t), Gate::Open);
        assert_eq!(
            g.decide(&s, "b", Some(&p), t),
            Gate::Wait(
                "waiting for GPU memory: need 8 GiB, free 10 GiB on GPU 0 \
                 (8 GiB promised to a, still starting)"
                    .into()
            )
        );
        // Once a's processes hold their memory, the reading itself shows less free.
        let mut loaded = snap(2 << 30);
        loaded.units.push(UnitGpu {
            unit: "a".into(),
            used_bytes: 8 << 30,
            per_gpu: vec![(0, 8 << 30)],
            pids: vec![1],
            max_used: None,
            min_free: Some(8 << 30),
            policy_restarts: 0,
        });
        assert!(
            matches!(g.decide(&loaded, "b", Some(&p), t), Gate::Wait(r) if !r.contains("promised"))
        );
        // A promise lapses after PROMISE_HOLD even if the unit never allocated.
        assert_eq!(g.decide(&s, "b", Some(&p), t + PROMISE_HOLD), Gate::Open);
    }

    #[test]
    fn unavailable_monitoring_does_not_hold_units() {
        let mut g = MinFreeGate::default();
        let s = GpuSnapshot::with_availability(Availability::Unavailable("no lib".into()));
        assert_eq!(
            g.decide(&s, "u", Some(&policy(1, 1)), Instant::now()),
            Gate::Open
        );
    }

    #[test]
    fn max_used_restarts_only_after_grace() {
        let mut w = MaxUsedWatch::default();
        let mut pols = HashMap::new();
        pols.insert("m".to_string(), policy(0, 1));
        let mut s = snap(1 << 30);
        s.units.push(UnitGpu {
            unit: "m".into(),
            used_bytes: 11 << 30,
            per_gpu: vec![(0, 11 << 30)],
            pids: vec![5],
            max_used: Some(10 << 30),
            min_free: None,
            policy_restarts: 0,
        });
        let t = Instant::now();
        assert!(w.observe(&s, &pols, t).is_empty());
        assert!(w.observe(&s, &pols, t + Duration::from_secs(9)).is_empty());
        let o = w.observe(&s, &pols, t + Duration::from_secs(10));
        assert_eq!(o.len(), 1);
        assert_eq!(
            o[0].reason,
            "GPU memory 11 GiB above gpu.max_used 10 GiB for 10s"
        );
        // Dropping below resets the timer.
        s.units[0].used_bytes = 1 << 30;
        assert!(w.observe(&s, &pols, t + Duration::from_secs(30)).is_empty());
    }

    #[test]
    fn alert_at_threshold() {
        let s = snap(4 << 30); // 76 of 80 GiB = 95%
        let a = used_alerts(&s, 90);
        assert_eq!(a.len(), 1);
        assert!(a[0].contains("95% used"), "{a:?}");
        assert!(used_alerts(&s, 96).is_empty());
        assert!(used_alerts(&s, 0).is_empty());
    }
}
