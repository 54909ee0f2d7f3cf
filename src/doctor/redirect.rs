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
    let url = match spec.db_url.resolve(secrets) {
        Ok(u) => u,
        Err(e) => {
            return err(
                format!("cannot read Logto's database URL: {e}"),
                "run doctor as root (the secrets store is readable by root only)".into(),
            )
        }
    };
    let connect = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_postgres::connect(&url, tokio_postgres::NoTls),
    );
    let db = match connect.await {
        Ok(Ok((db, conn))) => {
            tokio::spawn(conn);
            db
        }
        Ok(Err(e)) => {
            return err(
                format!(
                    "cannot connect to Logto's database (env DB_URL of unit {}): {}",
                    spec.logto,
                    crate::stack::postgres::error_text(&e)
                ),
                "make the postgres unit healthy first (`prometheus-stack status`)".into(),
            )
        }
        Err(_) => {
            return err(
                format!(
                    "Logto's database (env DB_URL of unit {}) does not answer within 10 s",
                    spec.logto
                ),
                "make the postgres unit healthy first (`prometheus-stack status`)".into(),
            )
        }
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
