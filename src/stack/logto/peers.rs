//! What Logto and LobeChat take from their peers (PostgreSQL, the object store).
//!
//! TEMPORARY: `database_url` and `lobechat_s3_env` stand in for
//! `stack::postgres::database_url` and `stack::objects::lobechat_s3_env`, owned by the
//! postgres and object-store presets; switch to those once they are on main.

use crate::plan::{Condition, Dependency, Encoding, EnvValue};
use crate::stack::PresetCtx;
use std::collections::BTreeMap;

/// Default port of the postgres preset when its section sets none.
const POSTGRES_PORT: u16 = 5432;

/// `postgres://DB:${secret:postgres-DB}@127.0.0.1:PORT/DB` when a postgres preset exists.
pub fn database_url(ctx: &PresetCtx, db: &str) -> Option<EnvValue> {
    let (_, pg) = ctx.find_preset("postgres")?;
    let port = pg.port.unwrap_or(POSTGRES_PORT);
    Some(
        EnvValue::text(format!("postgres://{db}:"))
            .push_secret(format!("postgres-{db}"), Encoding::Url)
            .push_text(format!("@127.0.0.1:{port}/{db}")),
    )
}

/// The postgres preset's oneshot that creates roles and databases.
pub fn postgres_init(ctx: &PresetCtx) -> Option<Dependency> {
    ctx.find_preset("postgres").map(|(name, _)| Dependency {
        unit: format!("{name}-init"),
        condition: Condition::Completed,
    })
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
