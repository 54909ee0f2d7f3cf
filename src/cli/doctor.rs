//! `doctor [--json]`: the running installation checked end to end (see `crate::doctor`).

use super::Ctx;
use crate::plan::BuildOptions;
use std::process::ExitCode;

/// Exit 0 when no check found an error (warnings do not fail), 1 otherwise.
pub fn doctor(ctx: &Ctx, json: bool) -> anyhow::Result<ExitCode> {
    // The file first: an invalid one is the first thing to fix, and `check` says how.
    let plan = match ctx.plan(BuildOptions::default()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "doctor: fix the config first (`prometheus-stack check` lists the same problems)"
            );
            return Ok(ExitCode::from(1));
        }
    };
    let socket = super::units::socket(ctx)?;
    let (cfg, src) = super::backup::load(ctx)?;
    let backups = crate::backup::backup_dir(&cfg, &src);
    let report = super::units::block_on(crate::doctor::run(&plan, &socket, &backups))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", report.render());
    }
    Ok(if report.healthy() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
