//! The redirect URI Logto stored for LobeChat's application (the row logto-provision
//! keeps) is LobeChat's callback — else Logto refuses every login with `redirect_uri`.

use super::Finding;
use crate::plan::{Exec, Plan, TaskSpec};
use crate::secrets::SecretStore;
use crate::stack::logto::provision::{ClientSpec, ProvisionSpec};
use crate::stack::logto::LOBECHAT_CLIENT_ID;
use std::time::Duration;

/// Every logto-provision unit that keeps a LobeChat client: its row in Logto's database.
pub async fn check_redirect(plan: &Plan, secrets: &SecretStore) -> Vec<Finding> {
    let mut out = Vec::new();
    for u in &plan.units {
        if let Exec::Task(TaskSpec::LogtoProvision(spec)) = &u.exec {
            if let (Some(_), Some(app)) = (&spec.lobechat, &spec.app_url) {
                out.extend(one(&u.name, spec, &ClientSpec::lobechat(app), secrets).await);
            }
        }
    }
    out
}

async fn one(
    unit: &str,
    spec: &ProvisionSpec,
    client: &ClientSpec,
    secrets: &SecretStore,
) -> Vec<Finding> {
    let want = client.redirect_uri();
    let rerun = format!(
        "`prometheus-stack restart {unit}` writes it again (see `prometheus-stack logs {unit}`)"
    );
    let err = |m: String, fix: String| vec![Finding::error("redirect", m, fix)];
    let db = match connect(spec, secrets).await {
        Ok(db) => db,
        Err(f) => return vec![f],
    };
    let row = db
        .query_opt(
            "SELECT oidc_client_metadata::text FROM applications WHERE id = $1",
            &[&client.id],
        )
        .await;
    let stored: Vec<String> = match row {
        Ok(Some(r)) => serde_json::from_str::<serde_json::Value>(&r.get::<_, String>(0))
            .ok()
            .and_then(|v| v["redirectUris"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        Ok(None) => {
            return err(
                format!("Logto has no application {LOBECHAT_CLIENT_ID:?} for LobeChat"),
                rerun,
            )
        }
        Err(e) => {
            return err(
                format!(
                    "reading LobeChat's application from Logto's database: {}",
                    crate::stack::postgres::error_text(&e)
                ),
                rerun,
            )
        }
    };
    if stored == [want.clone()] {
        return Vec::new();
    }
    err(
        format!("Logto's application {LOBECHAT_CLIENT_ID:?} stores redirect URIs {stored:?}, but LobeChat's callback is {want}"),
        rerun,
    )
}

/// Logto's database as its unit reaches it (DB_URL with the password from the store).
async fn connect(
    spec: &ProvisionSpec,
    secrets: &SecretStore,
) -> Result<tokio_postgres::Client, Finding> {
    let err = |m: String, fix: &str| Finding::error("redirect", m, fix);
    let healthy_first = "make the postgres unit healthy first (`prometheus-stack status`)";
    let url = spec.db_url.resolve(secrets).map_err(|e| {
        err(
            format!("cannot read Logto's database URL: {e}"),
            "run doctor as root (the secrets store is readable by root only)",
        )
    })?;
    let connect = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_postgres::connect(&url, tokio_postgres::NoTls),
    );
    match connect.await {
        Ok(Ok((db, conn))) => {
            tokio::spawn(conn);
            Ok(db)
        }
        Ok(Err(e)) => Err(err(
            format!(
                "cannot connect to Logto's database (env DB_URL of unit {}): {}",
                spec.logto,
                crate::stack::postgres::error_text(&e)
            ),
            healthy_first,
        )),
        Err(_) => Err(err(
            format!(
                "Logto's database (env DB_URL of unit {}) does not answer within 10 s",
                spec.logto
            ),
            healthy_first,
        )),
    }
}
