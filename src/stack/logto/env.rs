//! The environment Logto's server gets (DESIGN §2/§7): its database, its two public
//! origins, and the ports it listens on.

use super::Origins;
use crate::plan::EnvValue;
use std::collections::BTreeMap;

/// `DB_URL`, `ENDPOINT` (the public `https://auth.DOMAIN` origin), `ADMIN_ENDPOINT` (the
/// console's own origin), the ports, and `TRUST_PROXY_HEADER=1` because our proxy
/// terminates TLS in front of it; `NODE_OPTIONS` keeps its ports on loopback.
pub(super) fn server_env(o: &Origins, db_url: &EnvValue) -> BTreeMap<String, EnvValue> {
    let text = |v: &str| EnvValue::text(v);
    BTreeMap::from([
        ("DB_URL".to_string(), db_url.clone()),
        ("ENDPOINT".into(), text(&o.endpoint)),
        ("ADMIN_ENDPOINT".into(), text(&o.admin_endpoint)),
        ("TRUST_PROXY_HEADER".into(), text("1")),
        ("PORT".into(), text(&o.port.to_string())),
        ("ADMIN_PORT".into(), text(&o.admin_port.to_string())),
        ("NODE_ENV".into(), text("production")),
        ("NODE_OPTIONS".into(), super::loopback::env_value()),
    ])
}
