//! `bundle create|import|list`: offline images and artifacts for air-gapped installs.

use super::{BundleCmd, Ctx};
use crate::bundle::{self, Content};
use crate::plan::BuildOptions;
use anyhow::Context;
use std::process::ExitCode;

// Bundles are made on another machine than the one that runs the stack: the host checks
// (users, commands, certificate files) belong to the target, not here.
const OPTS: BuildOptions = BuildOptions { check_host: false };

/// Runs one `bundle` subcommand.
pub fn bundle(ctx: &Ctx, cmd: BundleCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        BundleCmd::Create { out } => {
            let plan = ctx.plan(OPTS)?;
            let c = bundle::create(&plan, &out)
                .with_context(|| format!("bundle create {}", out.display()))?;
            let (mut images, mut artifacts) = (0, 0);
            for f in &c.manifest.files {
                match f.content {
                    Content::Image { .. } => images += 1,
                    Content::Artifact { .. } => artifacts += 1,
                }
            }
            println!(
                "wrote {} ({images} images, {artifacts} artifact files, {:.1} MiB)",
                c.path.display(),
                c.bytes as f64 / (1024.0 * 1024.0)
            );
            Ok(ExitCode::SUCCESS)
        }
        BundleCmd::Import { file } => {
            let allowed = match ctx.plan(OPTS) {
                Ok(plan) => plan.bundle_artifacts,
                Err(e) => {
                    println!("note: the config does not build ({e}); artifacts will be skipped, images still load");
                    Vec::new()
                }
            };
            let r = bundle::import(&file, &allowed)
                .with_context(|| format!("bundle import {}", file.display()))?;
            println!(
                "imported {} images, restored {} artifact files{}",
                r.images.len(),
                r.artifacts.len(),
                if r.skipped.is_empty() {
                    String::new()
                } else {
                    format!(", skipped {}", r.skipped.len())
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        BundleCmd::List => {
            let plan = ctx.plan(OPTS)?;
            let l = bundle::list(&plan)?;
            println!("images (podman local storage):");
            if l.images.is_empty() {
                println!("  (no unit uses runtime = \"podman\")");
            }
            for p in &l.images {
                println!(
                    "  {:<8} {}  (units: {})",
                    if p.present { "present" } else { "MISSING" },
                    p.name,
                    p.units.join(", ")
                );
            }
            println!("artifacts ([bundle].artifacts):");
            if l.artifacts.is_empty() {
                println!("  (none listed)");
            }
            for p in &l.artifacts {
                println!(
                    "  {:<8} {}",
                    if p.present { "present" } else { "MISSING" },
                    p.name
                );
            }
            if l.complete() {
                Ok(ExitCode::SUCCESS)
            } else {
                println!("missing items: load them with `prometheus-stack bundle import FILE`");
                Ok(ExitCode::from(1))
            }
        }
    }
}
