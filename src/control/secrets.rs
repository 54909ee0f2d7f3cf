//! Control API of the secrets store: `GET /v1/secrets` (names, ages, consumers; never
//! values) and `POST /v1/secrets/{name}/rotate`.

use super::routes::{error, json, Body};
use crate::secrets::rotate::{consumers, not_rotatable, rotate, RotateError};
use crate::supervisor::Handle;
use hyper::{Response, StatusCode};
use serde::Serialize;

/// One row of `GET /v1/secrets`.
#[derive(Debug, Serialize)]
pub struct SecretRow {
    pub name: String,
    /// Seconds since the value was written; None when it does not exist yet.
    pub age_secs: Option<u64>,
    pub from_credentials: bool,
    /// False for files in the store that the plan no longer uses.
    pub in_plan: bool,
    pub description: String,
    pub consumers: Vec<String>,
    pub rotatable: bool,
}

/// Every secret of the plan plus every file in the store.
pub fn rows(plan: &crate::plan::Plan, store: &crate::secrets::SecretStore) -> Vec<SecretRow> {
    let stored = store.list().unwrap_or_default();
    let mut out: Vec<SecretRow> = plan
        .secrets
        .iter()
        .map(|(name, spec)| {
            let info = stored.iter().find(|i| &i.name == name);
            SecretRow {
                name: name.clone(),
                age_secs: info.map(|i| i.age_secs),
                from_credentials: info.is_some_and(|i| i.from_credentials),
                in_plan: true,
                description: spec.description.clone(),
                consumers: consumers(plan, name),
                rotatable: spec.kind != crate::plan::SecretKind::Provided
                    && not_rotatable(name).is_none(),
            }
        })
        .collect();
    for i in stored {
        if !plan.secrets.contains_key(&i.name) {
            out.push(SecretRow {
                name: i.name.clone(),
                age_secs: Some(i.age_secs),
                from_credentials: i.from_credentials,
                in_plan: false,
                description: "not used by the current plan".into(),
                consumers: Vec::new(),
                rotatable: false,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// `GET /v1/secrets`.
pub fn list(h: &Handle) -> Response<Body> {
    json(StatusCode::OK, &rows(&h.plan(), h.secrets()))
}

/// `POST /v1/secrets/{name}/rotate`.
pub async fn rotate_one(h: &Handle, name: &str) -> Response<Body> {
    let log = std::sync::Arc::new(|l: String| tracing::info!("secrets: {l}"));
    let reason = format!("secret {name} rotated");
    let r = rotate(h.plan(), h.secrets(), name, log, |unit| {
        let reason = reason.clone();
        async move {
            h.restart_with_reason(&unit, reason)
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await;
    match r {
        Ok(done) => json(StatusCode::OK, &done),
        Err(e @ RotateError::Unknown { .. }) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ (RotateError::FromCredentials { .. } | RotateError::NotRotatable { .. })) => {
            error(StatusCode::CONFLICT, e.to_string())
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
