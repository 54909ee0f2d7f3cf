//! Commands whose subsystem has not landed yet say so instead of pretending.

use super::{Command, Ctx};
use std::process::ExitCode;

/// Reports a command that this build does not implement yet.
pub fn not_built(_ctx: &Ctx, cmd: Command) -> anyhow::Result<ExitCode> {
    anyhow::bail!("{cmd:?}: not built yet in this version")
}
