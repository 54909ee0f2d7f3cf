//! A unit's env as container env: text with Service addresses, secrets by reference.
//!
//! A value that is one whole secret is a `secretKeyRef`; a value embedding secrets
//! (a database URL with its password) uses Kubernetes' `$(VAR)` expansion of a
//! `PS_SECRET_*` variable defined first. The store's random secrets are URL-safe, so
//! the single server's percent-encoding of them is the identity and the text is equal.

use super::objects::Ctx;
use super::{listen_rewrite, ExportError};
use crate::plan::{EnvPart, EnvValue, Unit};
use crate::stack::logto::loopback;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Prefix of the variables holding secrets that other values embed.
pub const SECRET_ENV_PREFIX: &str = "PS_SECRET_";

/// `PS_SECRET_POSTGRES_LOBECHAT` for secret `postgres-lobechat`.
pub fn secret_env_name(secret: &str) -> String {
    let up: String = secret
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{SECRET_ENV_PREFIX}{up}")
}

/// The container env of `unit`, sorted, with the embedded secrets' variables first.
pub fn container_env(ctx: &Ctx, unit: &Unit) -> Result<Vec<Value>, ExportError> {
    if let Some(f) = unit.env_files.first() {
        return Err(ExportError::Unit {
            key: format!("{}.env_files", unit.config_key),
            message: format!(
                "{} is a file on this host; move its variables into env = {{ … }} to export",
                f.display()
            ),
        });
    }
    let mut embedded = BTreeSet::new();
    let mut plain = Vec::new();
    for (key, value) in &unit.env {
        // Logto's loopback-only preload would hide it from its Service; in a cluster the
        // NetworkPolicies keep its admin port closed instead.
        if key == "NODE_OPTIONS" && value.as_text() == Some(loopback::node_options()) {
            continue;
        }
        plain.push(entry(ctx, &unit.name, key, value, &mut embedded));
    }
    let mut out: Vec<Value> = embedded
        .iter()
        .map(|s: &String| json!({"name": secret_env_name(s), "valueFrom": secret_ref(ctx, s)}))
        .collect();
    out.extend(plain);
    Ok(out)
}

/// `valueFrom` of one secret in the stack's Secret.
pub fn secret_ref(ctx: &Ctx, secret: &str) -> Value {
    json!({"secretKeyRef": {"name": ctx.secret_name(), "key": secret}})
}

fn entry(
    ctx: &Ctx,
    unit: &str,
    key: &str,
    value: &EnvValue,
    embedded: &mut BTreeSet<String>,
) -> Value {
    if let [EnvPart::Secret { name, .. }] = value.0.as_slice() {
        return json!({"name": key, "valueFrom": secret_ref(ctx, name)});
    }
    if let Some(text) = value.as_text() {
        let text = listen_rewrite(key, &text).unwrap_or_else(|| ctx.services.rewrite(unit, &text));
        return json!({"name": key, "value": escape(&text)});
    }
    let mut out = String::new();
    for part in &value.0 {
        match part {
            EnvPart::Text(t) => out.push_str(&escape(&ctx.services.rewrite(unit, t))),
            EnvPart::Secret { name, .. } => {
                embedded.insert(name.clone());
                out.push_str(&format!("$({})", secret_env_name(name)));
            }
        }
    }
    json!({"name": key, "value": out})
}

/// Literal `$(` must not be expanded by the kubelet: `$$(` is its escape.
fn escape(text: &str) -> String {
    text.replace("$(", "$$(")
}
