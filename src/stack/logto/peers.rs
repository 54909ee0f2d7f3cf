//! What Logto and LobeChat take from their peers: the postgres preset's database URLs and
//! `NAME-init` edge, the object-store preset's S3 env and `NAME-init` edge. One place, so
//! the presets read as "what we need" and the peers own "how it is spelled".
//!
//! TEMPORARY: `objects_init` and `lobechat_s3_env` stand in for
//! `stack::objects::{lobechat_dependency, lobechat_s3_env}` (same signatures, secret
//! names and URL shape) until the object-store preset is on main.

use crate::plan::{Condition, Dependency, EnvValue};
use crate::stack::{postgres, PresetCtx};
use std::collections::BTreeMap;

/// `postgres://DB:${secret:…}@127.0.0.1:PORT/DB` when a postgres preset serves `db`.
pub fn database_url(ctx: &PresetCtx, db: &str) -> Option<EnvValue> {
    if db == "logto" {
        postgres::logto_db_url(ctx, db)
    } else {
        postgres::database_url(ctx, db)
    }
}

/// The postgres preset's oneshot that creates roles and databases (completed).
pub fn postgres_init(ctx: &PresetCtx) -> Option<Dependency> {
    postgres::init_dependency(ctx)
}

/// The object store's oneshot that creates the bucket and its policy.
pub fn objects_init(ctx: &PresetCtx) -> Option<Dependency> {
    objects(ctx).map(|(name, _)| Dependency {
        unit: format!("{name}-init"),
        condition: Condition::Completed,
    })
}

fn objects<'a>(ctx: &'a PresetCtx) -> Option<(&'a str, &'a crate::config::model::ServiceSection)> {
    ctx.find_preset("rustfs")
        .or_else(|| ctx.find_preset("minio"))
}

/// LobeChat's `S3_*` variables; None without an object-store preset. Same shape as the
/// object-store preset's own (bucket same-origin at APP_URL/BUCKET, path-style, root key).
pub fn lobechat_s3_env(ctx: &PresetCtx) -> Option<BTreeMap<String, EnvValue>> {
    let (_, sec) = objects(ctx)?;
    let lobe = ctx
        .find_preset("lobechat")
        .map(|(_, s)| s.clone())
        .unwrap_or_default();
    let endpoint = crate::stack::lobechat::app_url(ctx.cfg, &lobe, "").ok()?;
    let bucket = sec.bucket.clone().unwrap_or_else(|| "lobe".into());
    let mut env = BTreeMap::new();
    env.insert("S3_ENDPOINT".into(), EnvValue::text(&endpoint));
    env.insert("S3_PUBLIC_DOMAIN".into(), EnvValue::text(&endpoint));
    env.insert("S3_BUCKET".into(), EnvValue::text(bucket));
    env.insert("S3_REGION".into(), EnvValue::text("us-east-1"));
    env.insert("S3_ENABLE_PATH_STYLE".into(), EnvValue::text("1"));
    env.insert("S3_SET_ACL".into(), EnvValue::text("0"));
    env.insert(
        "S3_ACCESS_KEY_ID".into(),
        EnvValue::secret("objects-root-user"),
    );
    env.insert(
        "S3_SECRET_ACCESS_KEY".into(),
        EnvValue::secret("objects-root-password"),
    );
    Some(env)
}
