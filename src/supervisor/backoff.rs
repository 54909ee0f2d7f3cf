//! Restart delays: jittered exponential growth, capped, reset after a long enough run.

use crate::plan::Backoff as Policy;
use rand::Rng;
use std::time::Duration;

/// Smallest step used for growth when `initial` is 0 (so "0s" still grows after the first).
const MIN_STEP: Duration = Duration::from_millis(100);

/// The delay sequence of one unit.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: Policy,
    attempt: u32,
}

impl Backoff {
    /// A fresh sequence.
    pub fn new(policy: Policy) -> Self {
        Backoff { policy, attempt: 0 }
    }

    /// The delay before the next restart, given how long the last run stayed up.
    /// The first delay is `initial`; each next one doubles, up to `max` (with `initial` = 0
    /// the second delay is 100ms);
    /// each delay is jittered down by up to 20% so units failing together spread out.
    pub fn next(&mut self, uptime: Duration) -> Duration {
        if uptime >= self.policy.reset_after {
            self.attempt = 0;
        }
        let n = self.attempt;
        self.attempt = self.attempt.saturating_add(1);
        let base = if self.policy.initial.is_zero() {
            match n {
                0 => Duration::ZERO,
                n => MIN_STEP.saturating_mul(1u32 << (n - 1).min(20)),
            }
        } else {
            self.policy.initial.saturating_mul(1u32 << n.min(20))
        }
        .min(self.policy.max);
        if base.is_zero() {
            return base;
        }
        let jitter = rand::thread_rng().gen_range(0.8..=1.0);
        base.mul_f64(jitter)
    }

    /// Forgets earlier failures (after a start by hand).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pol(initial: u64, max: u64) -> Policy {
        Policy {
            initial: Duration::from_millis(initial),
            max: Duration::from_millis(max),
            reset_after: Duration::from_secs(10),
        }
    }

    #[test]
    fn grows_caps_and_resets() {
        let mut b = Backoff::new(pol(100, 1000));
        let d: Vec<u128> = (0..6).map(|_| b.next(Duration::ZERO).as_millis()).collect();
        assert!((80..=100).contains(&d[0]), "{d:?}");
        assert!((160..=200).contains(&d[1]), "{d:?}");
        assert!((320..=400).contains(&d[2]), "{d:?}");
        assert!((800..=1000).contains(&d[5]), "{d:?}");
        let after = b.next(Duration::from_secs(11)).as_millis();
        assert!((80..=100).contains(&after), "{after}");
    }

    #[test]
    fn zero_initial_is_immediate_then_grows() {
        let mut b = Backoff::new(pol(0, 5000));
        assert_eq!(b.next(Duration::ZERO), Duration::ZERO);
        assert!(b.next(Duration::ZERO) >= Duration::from_millis(80));
        assert!(b.next(Duration::ZERO) >= Duration::from_millis(160));
    }
}
