//! Client commands of the running daemon: status, start/stop/restart, logs, reload.

use super::Ctx;
use crate::control::{Client, ClientError};
use crate::plan::BuildOptions;
use anyhow::Context;
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Where the packaged (systemd) daemon listens by default.
const SYSTEM_SOCKET: &str = "/run/prometheus-stack/control.sock";

/// The socket: --socket, else the one the config names.
pub(super) fn socket(ctx: &Ctx) -> anyhow::Result<PathBuf> {
    if let Some(s) = &ctx.socket {
        return Ok(s.clone());
    }
    match ctx.plan(BuildOptions { check_host: false }) {
        Ok(plan) => {
            // The plan places the runtime dir by the caller's uid and systemd's
            // RUNTIME_DIRECTORY; an operator's shell has neither, the packaged daemon does.
            let packaged = std::path::Path::new(SYSTEM_SOCKET);
            if !plan.control.socket.exists()
                && plan.stack.data_dir == std::path::Path::new("/var/lib/prometheus-stack")
                && packaged.exists()
            {
                return Ok(packaged.to_path_buf());
            }
            Ok(plan.control.socket)
        }
        // An edited, now invalid file must not keep `reload` from reaching the daemon
        // (which then reports the problems): read just the keys that place the socket.
        Err(e) => socket_from_raw(ctx)
            .ok_or_else(|| anyhow::anyhow!("{e}\n(pass --socket to reach a daemon anyway)")),
    }
}

/// The socket from `[control].socket`, `[stack].runtime_dir` or `[stack].data_dir` of a file
/// that is valid TOML but not a valid config (same rules as the plan builder).
fn socket_from_raw(ctx: &Ctx) -> Option<PathBuf> {
    let super::ConfigChoice::File(path) = ctx.config_choice() else {
        return None;
    };
    let v: toml::Value = toml::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
    let base = std::path::absolute(&path).ok()?.parent()?.to_path_buf();
    let abs = |p: &str| base.join(p).components().collect::<PathBuf>();
    if let Some(s) = v
        .get("control")
        .and_then(|c| c.get("socket"))
        .and_then(|s| s.as_str())
    {
        return Some(abs(s));
    }
    let stack = v.get("stack");
    let get = |k: &str| stack.and_then(|s| s.get(k)).and_then(|x| x.as_str());
    if let Some(r) = get("runtime_dir") {
        return Some(abs(r).join("control.sock"));
    }
    if let Some(r) = std::env::var_os("RUNTIME_DIRECTORY") {
        let first = r.to_string_lossy().split(':').next()?.to_string();
        return Some(PathBuf::from(first).join("control.sock"));
    }
    let data = abs(get("data_dir").unwrap_or(
        crate::config::model::StackSection::default()
            .data_dir
            .to_str()?,
    ));
    if nix::unistd::geteuid().is_root() && data == std::path::Path::new("/var/lib/prometheus-stack")
    {
        return Some(PathBuf::from(SYSTEM_SOCKET));
    }
    Some(data.join("run/control.sock"))
}

pub(super) fn block_on<T>(f: impl std::future::Future<Output = T>) -> anyhow::Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok(rt.block_on(f))
}

/// Prints a client error as one line; exit 1.
fn fail(e: ClientError) -> anyhow::Result<ExitCode> {
    eprintln!("prometheus-stack: {e}");
    Ok(ExitCode::from(1))
}

/// `status [--json]`.
pub fn status(ctx: &Ctx, json: bool) -> anyhow::Result<ExitCode> {
    let client = Client::new(socket(ctx)?);
    let mut v = match block_on(client.get_json("/v1/status"))? {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let gpu = block_on(client.get_json("/v1/gpu"))?
        .ok()
        .and_then(|g| serde_json::from_value::<crate::gpu::GpuSnapshot>(g).ok());
    if json {
        if let Some(g) = &gpu {
            v["gpu"] = serde_json::to_value(g)?;
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", render_status(&v));
        for w in v["warnings"].as_array().into_iter().flatten() {
            println!("warning: {}", w.as_str().unwrap_or_default());
        }
        if let Some(line) = super::backup::status_line(&v["backup"]) {
            println!("{line}");
        }
        if let Some(g) = &gpu {
            print!("{}", super::gpu::status_footer(g));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The status table.
pub fn render_status(v: &Value) -> String {
    let now = crate::supervisor::state::now();
    let mut rows = vec![[
        "UNIT",
        "STATE",
        "PID",
        "CPU",
        "MEM",
        "UPTIME",
        "RESTARTS",
        "HEALTH",
        "LAST EXIT",
        "REASON",
    ]
    .map(String::from)];
    for u in v["units"].as_array().into_iter().flatten() {
        let s = |k: &str| u[k].as_str().unwrap_or("-").to_string();
        let state = s("state");
        let up = match (state.as_str(), u["started_at"].as_f64()) {
            ("running" | "healthy", Some(t)) => human(now - t),
            _ => "-".into(),
        };
        rows.push([
            s("name"),
            state,
            u["pid"]
                .as_u64()
                .map(|p| p.to_string())
                .unwrap_or("-".into()),
            u["cpu_percent"]
                .as_f64()
                .map_or("-".into(), |c| format!("{c:.1}%")),
            u["memory_bytes"].as_u64().map_or("-".into(), bytes),
            up,
            u["restarts"].as_u64().unwrap_or(0).to_string(),
            s("health"),
            s("last_exit"),
            s("reason"),
        ]);
    }
    let mut widths = [0usize; 10];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i == widths.len() - 1 {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Memory as `docker stats` shows it: 1024-based, one decimal.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.1}{}", UNITS[i])
    }
}

fn human(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        3600..=86399 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

/// `start|stop|restart UNIT…`.
pub fn action(ctx: &Ctx, action: &str, units: &[String]) -> anyhow::Result<ExitCode> {
    if units.is_empty() {
        anyhow::bail!("{action}: name at least one unit (see `prometheus-stack status`)");
    }
    let client = Client::new(socket(ctx)?);
    let mut code = ExitCode::SUCCESS;
    for u in units {
        let r = block_on(client.post_json(&format!("/v1/units/{u}/{action}")))?;
        match r {
            Ok(_) => println!("{u}: {action} ok"),
            Err(e @ ClientError::NoDaemon(_)) => return fail(e),
            Err(e) => {
                eprintln!("{u}: {e}");
                code = ExitCode::from(1);
            }
        }
    }
    Ok(code)
}

/// `logs [-f] [-n N] UNIT`.
pub fn logs(ctx: &Ctx, unit: &str, follow: bool, n: usize) -> anyhow::Result<ExitCode> {
    let client = Client::new(socket(ctx)?);
    let path = format!(
        "/v1/units/{unit}/logs?n={n}{}",
        if follow { "&follow=1" } else { "" }
    );
    let r = block_on(client.stream(&path, |chunk| {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(chunk);
        let _ = out.flush();
    }))?;
    match r {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => fail(e),
    }
}

/// `reload`: prints what restarted, or the config error (exit 1).
pub fn reload(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let client = Client::new(socket(ctx)?);
    match block_on(client.post_json("/v1/reload"))? {
        Ok(v) => {
            let list = |k: &str| {
                let names: Vec<&str> = v[k]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_str())
                    .collect();
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            };
            println!(
                "reloaded: restarted {}; added {}; removed {}",
                list("restarted"),
                list("added"),
                list("removed")
            );
            for w in v["warnings"].as_array().into_iter().flatten() {
                eprintln!("warning: {}", w.as_str().unwrap_or_default());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => fail(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_reads_like_docker_stats() {
        assert_eq!(bytes(512), "512B");
        assert_eq!(bytes(64 << 20), "64.0MiB");
        assert_eq!(bytes((3 << 30) + (512 << 20)), "3.5GiB");
    }

    #[test]
    fn status_table_has_cpu_and_memory_columns() {
        let v = serde_json::json!({"units": [
            {"name": "db", "state": "running", "pid": 7, "cpu_percent": 12.345,
             "memory_bytes": 100 << 20, "restarts": 0},
            {"name": "idle", "state": "stopped", "restarts": 1},
        ]});
        let t = render_status(&v);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].starts_with("UNIT") && lines[0].contains("CPU") && lines[0].contains("MEM")
        );
        assert!(
            lines[1].contains("12.3%") && lines[1].contains("100.0MiB"),
            "{t}"
        );
        assert!(!lines[2].contains('%'), "{t}");
    }
}
