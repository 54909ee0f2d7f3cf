//! Start gates: conditions outside the dependency graph (e.g. free GPU memory) that hold a
//! unit in `pending`. Polled about every second while the unit waits.

use crate::plan::Unit;

/// A gate's answer for one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Keep waiting; the text shows as the unit's reason ("waiting for GPU memory: …").
    Wait(String),
    /// Give up: the unit becomes `failed` with this reason until started by hand.
    Fail(String),
}

/// A condition a unit must pass before each start.
pub trait StartGate: Send + Sync {
    /// Decides for `unit` now; must not block.
    fn check(&self, unit: &Unit) -> Gate;
}
