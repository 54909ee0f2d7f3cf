//! `backup [--to FILE]`, `backup list`, `backup verify FILE`, `restore FILE`.

use super::{BackupCmd, ConfigChoice, Ctx};
use crate::backup::{self, RestoreOptions, Sources};
use crate::bundle::mib;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn load(ctx: &Ctx) -> anyhow::Result<(crate::config::ConfigFile, crate::config::Source)> {
    Ok(match ctx.config_choice() {
        ConfigChoice::File(p) => crate::config::load_file(&p)?,
        ConfigChoice::Embedded => crate::config::load_str(
            "<embedded default>",
            None,
            crate::config::DEFAULT_CONFIG.to_string(),
        )?,
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Runs `backup` or one of its subcommands.
pub fn backup(
    ctx: &Ctx,
    to: Option<PathBuf>,
    action: Option<BackupCmd>,
) -> anyhow::Result<ExitCode> {
    match action {
        Some(BackupCmd::Verify { file }) => {
            let v = backup::verify(&file)
                .with_context(|| format!("backup verify {}", file.display()))?;
            println!(
                "{}: OK ({} entries, {} objects, {} of content, {} on disk, taken by {})",
                file.display(),
                v.manifest.entries.len(),
                v.manifest.objects(),
                mib(v.manifest.content_bytes()),
                mib(v.file_bytes),
                v.manifest.created_by
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(BackupCmd::List) => {
            let (cfg, src) = load(ctx)?;
            let dir = backup::backup_dir(&cfg, &src);
            let list =
                backup::list(&dir).with_context(|| format!("backup list {}", dir.display()))?;
            if list.is_empty() {
                println!("no backups in {}", dir.display());
            }
            for b in list {
                println!("{}  {:>12}  {}", b.taken, mib(b.bytes), b.path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let (cfg, src) = load(ctx)?;
            let sources = Sources::resolve(&cfg, &src)?;
            let out = match to {
                Some(p) => p,
                None => backup::backup_dir(&cfg, &src).join(backup::default_name(now())),
            };
            let rt = runtime()?;
            let c = backup::create(&sources, &out, rt.handle())
                .with_context(|| format!("backup to {}", out.display()))?;
            println!(
                "wrote {} ({} entries, {} objects, {} of content, {} on disk; verified)",
                c.path.display(),
                c.manifest.entries.len(),
                c.manifest.objects(),
                mib(c.manifest.content_bytes()),
                mib(c.bytes)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs `restore FILE`.
pub fn restore(file: &Path, opts: RestoreOptions) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    let r = backup::restore(file, &opts, rt.handle())
        .with_context(|| format!("restore {}", file.display()))?;
    println!(
        "restored {} files into {} (config: {}), {} objects",
        r.files,
        r.data_dir.display(),
        r.config.display(),
        r.objects
    );
    if let Some(reason) = r.objects_pending {
        println!(
            "objects NOT restored yet: {reason}.\nStart the stack (`systemctl start prometheus-stack` or `prometheus-stack run`), then run:\n  prometheus-stack restore {} --objects-only{}",
            file.display(),
            opts.data_dir
                .map(|d| format!(" --data-dir {}", d.display()))
                .unwrap_or_default()
        );
        return Ok(ExitCode::from(2));
    }
    println!("start the stack: PostgreSQL replays its WAL on the first start");
    Ok(ExitCode::SUCCESS)
}
