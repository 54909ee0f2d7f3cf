//! `check` and `show-config`: the config without a daemon.

use super::Ctx;
use crate::plan::{BuildOptions, Exec, Plan, Runtime};
use std::process::ExitCode;

/// Exit 0 on a valid config; otherwise list every problem and exit 1.
pub fn check(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    match ctx.plan(BuildOptions::default()) {
        Ok(plan) => {
            for w in &plan.warnings {
                eprintln!("warning: {w}");
            }
            println!(
                "{}: ok ({} units: {})",
                plan.source.name,
                plan.units.len(),
                plan.units
                    .iter()
                    .map(|u| u.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Prints the resolved plan; secrets appear only as `${secret:NAME}`.
pub fn show_config(ctx: &Ctx, json: bool) -> anyhow::Result<ExitCode> {
    let plan = match ctx.plan(BuildOptions { check_host: false }) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{}", render(&plan));
    }
    Ok(ExitCode::SUCCESS)
}

fn render(plan: &Plan) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "# plan from {}", plan.source.name);
    let _ = writeln!(
        o,
        "stack {} (data {}, runtime {})",
        plan.stack.name,
        plan.stack.data_dir.display(),
        plan.stack.runtime_dir.display()
    );
    let _ = writeln!(o, "control socket {}", plan.control.socket.display());
    for u in &plan.units {
        let _ = writeln!(o, "\nunit {} ({:?}, {})", u.name, u.kind, u.origin);
        match (&u.runtime, &u.exec) {
            (Runtime::Podman(p), Exec::Command(c)) => {
                let _ = writeln!(o, "  podman image {} {}", p.image, shell_words(c));
            }
            (_, Exec::Command(c)) => {
                let _ = writeln!(o, "  exec {}", shell_words(c));
            }
            (_, Exec::Task(t)) => {
                let _ = writeln!(o, "  task {}", t.summary());
            }
        }
        if let Some(user) = &u.user {
            let _ = writeln!(o, "  user {user}");
        }
        if let Some(p) = u.port {
            let _ = writeln!(o, "  port {p}");
        }
        for d in &u.depends_on {
            let _ = writeln!(o, "  after {} ({:?})", d.unit, d.condition);
        }
        for (k, v) in &u.env {
            let _ = writeln!(o, "  env {k}={v}");
        }
    }
    if let Some(p) = &plan.proxy {
        let _ = writeln!(o, "\nproxy https {} tls {:?}", p.https, p.tls);
        for s in &p.sites {
            let _ = writeln!(o, "  site {}", s.host);
            for r in &s.routes {
                let _ = writeln!(o, "    {} -> {:?}", r.path, r.action);
            }
        }
    }
    for w in &plan.warnings {
        let _ = writeln!(o, "\nwarning: {w}");
    }
    o
}

fn shell_words(c: &[String]) -> String {
    c.iter()
        .map(|w| {
            if w.is_empty() || w.contains(|ch: char| ch.is_whitespace() || "'\"$\\".contains(ch)) {
                format!("'{}'", w.replace('\'', "'\\''"))
            } else {
                w.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
