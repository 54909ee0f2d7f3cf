//! What Logto and LobeChat take from their peers: the postgres preset's database URLs and
//! `NAME-init` edge, the object-store preset's S3 env and `NAME-init` edge. One place, so
//! the presets read as "what we need" and the peers own "how it is spelled".

use crate::plan::{Dependency, EnvValue};
use crate::stack::{objects, postgres, PresetCtx};
use std::collections::BTreeMap;

/// `postgres://DB:${secret:…}@127.0.0.1:PORT/DB` when a postgres preset serves `db`.
pub fn database_url(ctx: &PresetCtx, db: &str) -> Option<EnvValue> {
    if db == "logto" {
        postgres::logto_db_url(ctx, db)
    } else {
        postgres::database_url(ctx, db)
    }
}

/// The postgres server that lends Logto's role CREATEROLE for the seed (taken back by
/// `NAME-provision`); None when no postgres preset serves Logto's database.
pub fn seed_role_server(ctx: &PresetCtx) -> Option<postgres::PgServer> {
    postgres::seed_role_server(ctx, "logto")
}

/// The postgres preset's oneshot that creates roles and databases (completed).
pub fn postgres_init(ctx: &PresetCtx) -> Option<Dependency> {
    postgres::init_dependency(ctx)
}

/// The object store's oneshot that creates the bucket and its policy (completed).
pub fn objects_init(ctx: &PresetCtx) -> Option<Dependency> {
    objects::lobechat_dependency(ctx)
}

/// LobeChat's `S3_*` variables; None without an object-store preset.
pub fn lobechat_s3_env(ctx: &PresetCtx) -> Option<BTreeMap<String, EnvValue>> {
    objects::lobechat_s3_env(ctx)
}
