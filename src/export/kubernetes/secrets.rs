//! The stack's Secret: one key per secret of the plan, values from the secrets store
//! (`--secrets=inline`), or nothing written (`--secrets=external`: the operator creates
//! a Secret of that name and keys, e.g. from a vault; the workloads only reference it).

use super::objects::Ctx;
use super::{ExportError, SecretsMode};
use crate::secrets::SecretStore;
use serde_json::{json, Map, Value};

/// The Secret object, or None with `--secrets=external`.
pub fn secret(ctx: &Ctx, store: &SecretStore) -> Result<Option<Value>, ExportError> {
    if ctx.opts.secrets == SecretsMode::External {
        return Ok(None);
    }
    let mut data = Map::new();
    for name in ctx.plan.secrets.keys() {
        data.insert(name.clone(), json!(store.read(name)?));
    }
    Ok(Some(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": ctx.meta(&ctx.secret_name()),
        "type": "Opaque",
        "stringData": data
    })))
}
