//! `secrets list` (names and ages, never values), `secrets rotate NAME`, and
//! `secrets show NAME` (one value, read from the root-only store; never over the socket).

use super::{Ctx, SecretsCmd};
use crate::control::{Client, ClientError};
use crate::plan::BuildOptions;
use anyhow::Context;
use serde_json::Value;
use std::process::ExitCode;

/// Runs a `secrets` subcommand.
pub fn run(ctx: &Ctx, cmd: SecretsCmd) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let plan = ctx.plan(BuildOptions { check_host: false });
    if let SecretsCmd::Show { name } = &cmd {
        return show(plan.map_err(|e| anyhow::anyhow!("{e}"))?, name);
    }
    let socket = match (&ctx.socket, &plan) {
        (Some(s), _) => s.clone(),
        (None, Ok(p)) => p.control.socket.clone(),
        (None, Err(e)) => anyhow::bail!("{e}\n(pass --socket to reach a daemon anyway)"),
    };
    let client = Client::new(&socket);
    match cmd {
        SecretsCmd::List => {
            let rows = match rt.block_on(client.get_json("/v1/secrets")) {
                Ok(v) => v,
                // No daemon: the store on disk answers the same question.
                Err(ClientError::NoDaemon(_)) => match &plan {
                    Ok(p) => {
                        let store = crate::secrets::SecretStore::new(&p.stack.data_dir);
                        serde_json::to_value(crate::control::secrets::rows(p, &store))?
                    }
                    Err(e) => anyhow::bail!("{e}"),
                },
                Err(e) => {
                    eprintln!("prometheus-stack: {e}");
                    return Ok(ExitCode::from(1));
                }
            };
            print!("{}", render(&rows));
            Ok(ExitCode::SUCCESS)
        }
        SecretsCmd::Rotate { name } => {
            let path = format!("/v1/secrets/{name}/rotate");
            match rt.block_on(client.post_json(&path)) {
                Ok(v) => {
                    let restarted: Vec<&str> = v["restarted"]
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    if restarted.is_empty() {
                        println!("{name} rotated (no consumer to restart)");
                    } else {
                        println!("{name} rotated; restarted {}", restarted.join(", "));
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("prometheus-stack: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        SecretsCmd::Show { .. } => unreachable!("answered above"),
    }
}

/// Prints the value of a plan secret. The store's files are 0600 and owned by the
/// daemon's user: the file permissions are what keeps this to root.
fn show(plan: crate::plan::Plan, name: &str) -> anyhow::Result<ExitCode> {
    if !plan.secrets.contains_key(name) {
        let known: Vec<_> = plan.secrets.keys().cloned().collect();
        anyhow::bail!(
            "no secret {name:?} in the plan; known: {}",
            known.join(", ")
        );
    }
    let store = crate::secrets::SecretStore::new(&plan.stack.data_dir);
    let value = store.read(name).with_context(|| {
        format!(
            "reading secret {name:?} (run as root; the daemon creates it when the unit using it first starts)"
        )
    })?;
    println!("{value}");
    Ok(ExitCode::SUCCESS)
}

/// "3d 4h", "12m", "40s".
pub fn age(secs: u64) -> String {
    match secs {
        s if s >= 86_400 => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
        s if s >= 3600 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn render(rows: &Value) -> String {
    let mut table = vec![[
        "NAME".to_string(),
        "AGE".to_string(),
        "SOURCE".to_string(),
        "USED BY".to_string(),
        "DESCRIPTION".to_string(),
    ]];
    for r in rows.as_array().into_iter().flatten() {
        let age_text = r["age_secs"]
            .as_u64()
            .map(age)
            .unwrap_or_else(|| "not created".into());
        let source = if r["from_credentials"].as_bool() == Some(true) {
            "credentials"
        } else {
            "store"
        };
        let used: Vec<&str> = r["consumers"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        table.push([
            r["name"].as_str().unwrap_or("?").to_string(),
            age_text,
            source.to_string(),
            if used.is_empty() {
                "-".into()
            } else {
                used.join(",")
            },
            r["description"].as_str().unwrap_or("").to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in &table {
        for (i, w) in widths.iter().enumerate() {
            out.push_str(&format!("{:<w$}  ", r[i], w = *w));
        }
        out.push_str(&r[4]);
        out.push('\n');
    }
    out
}
