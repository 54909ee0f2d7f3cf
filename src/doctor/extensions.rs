//! Each database a postgres preset provisions has the extensions its section asks for.

use super::Finding;
use crate::plan::{Exec, Plan, TaskSpec};
use crate::secrets::SecretStore;
use crate::stack::postgres::{PgConfig, SUPERUSER};

/// Logs in as the superuser (password from the secrets store) to every database of every
/// postgres preset and compares `pg_extension` with the wanted list.
pub async fn check_extensions(plan: &Plan, secrets: &SecretStore) -> Vec<Finding> {
    let mut out = Vec::new();
    for u in &plan.units {
        if let Exec::Task(TaskSpec::PostgresInit(cfg)) = &u.exec {
            if !cfg.extensions.is_empty() {
                out.extend(one_server(&u.name, cfg, secrets).await);
            }
        }
    }
    out
}

async fn one_server(init_unit: &str, cfg: &PgConfig, secrets: &SecretStore) -> Vec<Finding> {
    let server = &cfg.server.unit;
    let password = match secrets.read(&cfg.superuser_secret()) {
        Ok(p) => p,
        Err(e) => {
            return vec![Finding::error(
                "extensions",
                format!("cannot check the extensions of {server}: {e}"),
                "run doctor as root (the secrets store is readable by root only)",
            )]
        }
    };
    let mut out = Vec::new();
    for db in &cfg.databases {
        let present: Vec<String> = match crate::stack::postgres::open(
            cfg.server.port,
            SUPERUSER,
            &password,
            db,
        )
        .await
        {
            Ok(c) => match c.query("SELECT extname FROM pg_extension", &[]).await {
                Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
                Err(e) => {
                    out.push(Finding::error(
                        "extensions",
                        format!(
                            "listing the extensions of database {db} on {server}: {}",
                            crate::stack::postgres::error_text(&e)
                        ),
                        format!("read `prometheus-stack logs {server}`"),
                    ));
                    continue;
                }
            },
            Err(e) => {
                out.push(Finding::error("extensions", format!("cannot check database {db} of {server} on 127.0.0.1:{}: {}", cfg.server.port, crate::stack::postgres::error_text(&e)), format!("make unit {server} healthy first (`prometheus-stack status`), then `prometheus-stack restart {init_unit}`")));
                continue;
            }
        };
        for ext in cfg.extensions.iter().filter(|e| !present.contains(e)) {
            out.push(Finding::error(
                "extensions",
                format!("database {db} on {server} lacks extension {ext}"),
                format!("`prometheus-stack restart {init_unit}` creates it (its package must be installed, e.g. postgresql-17-pgvector for vector); see `prometheus-stack logs {init_unit}`"),
            ));
        }
    }
    out
}
