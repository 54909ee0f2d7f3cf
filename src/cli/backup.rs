//! `backup [--to FILE]`, `backup list`, `backup verify FILE`, `restore FILE`.

use super::{BackupCmd, ConfigChoice, Ctx};
use crate::backup::{self, RestoreOptions, Sources};
use crate::bundle::mib;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub(super) fn load(
    ctx: &Ctx,
) -> anyhow::Result<(crate::config::ConfigFile, crate::config::Source)> {
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
    before_upgrade: bool,
    action: Option<BackupCmd>,
) -> anyhow::Result<ExitCode> {
    if before_upgrade && action.is_none() && !upgrade_wants_backup(ctx)? {
        return Ok(ExitCode::SUCCESS);
    }
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

/// `--before-upgrade`: true when `[backup].before_upgrade` and the daemon answers.
fn upgrade_wants_backup(ctx: &Ctx) -> anyhow::Result<bool> {
    let (cfg, _) = load(ctx)?;
    if !cfg.backup.before_upgrade {
        println!("no backup before the upgrade: [backup].before_upgrade = false");
        return Ok(false);
    }
    let socket = super::units::socket(ctx)?;
    let client = crate::control::client::Client::new(&socket);
    let up = runtime()?.block_on(client.get_json("/v1/status")).is_ok();
    if !up {
        println!(
            "no backup before the upgrade: the daemon is not running ({} does not answer); its data is at rest",
            socket.display()
        );
    }
    Ok(up)
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

/// The `backup:` line of `status` from `/v1/status`'s `"backup"` (None when absent).
pub fn status_line(b: &serde_json::Value) -> Option<String> {
    let sched = b["schedule"].as_str()?;
    let when = |k: &str| b[k].as_u64().map(crate::backup::utc);
    let mut line = format!("backup: schedule {sched:?}");
    if let Some(n) = when("next_unix") {
        line += &format!(", next {n}");
    }
    if b["running"].as_bool() == Some(true) {
        line += ", running now";
    }
    if b["last_result"].as_str() == Some("failed") {
        line += &format!(
            "\nerror: the last backup FAILED at {}: {}",
            when("last_attempt_unix").unwrap_or_default(),
            b["last_error"].as_str().unwrap_or("?")
        );
    }
    if let Some(t) = when("last_success_unix") {
        line += &format!(
            "; last good backup {t}, {} ({})",
            mib(b["last_size_bytes"].as_u64().unwrap_or(0)),
            b["last_file"].as_str().unwrap_or("?")
        );
    } else if sched != "off" {
        line += "; no backup taken yet";
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_shows_failures_and_the_last_good_one() {
        let v = serde_json::json!({"schedule": "hourly", "running": false, "next_unix": 3600,
            "last_result": "failed", "last_attempt_unix": 0, "last_error": "disk full",
            "last_success_unix": 0, "last_size_bytes": 1048576, "last_file": "/b/x.tar.zst"});
        let l = status_line(&v).unwrap();
        assert!(l.contains("FAILED") && l.contains("disk full"), "{l}");
        assert!(l.contains("1.0 MiB") && l.contains("/b/x.tar.zst"), "{l}");
        assert_eq!(status_line(&serde_json::Value::Null), None);
    }
}
