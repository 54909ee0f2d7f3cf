//! `[services.NAME] external_url`: a managed PostgreSQL instead of the exported one.
//!
//! The unit stays in the plan (its oneshots still provision roles and databases, now on
//! the managed server); only its address changes: where the cluster would use the
//! Service `NAME:PORT`, it uses the URL's `HOST:PORT`.

use super::ExportError;
use crate::config::model::{ConfigFile, Preset};
use std::collections::BTreeMap;

/// Unit → `HOST:PORT` of every section with an `external_url`.
pub fn external_addresses(cfg: &ConfigFile) -> Result<BTreeMap<String, String>, ExportError> {
    let mut out = BTreeMap::new();
    for (name, svc) in &cfg.services {
        let Some(url) = &svc.external_url else {
            continue;
        };
        let key = format!("services.{name}.external_url");
        if !matches!(svc.preset, Some(Preset::Postgres)) {
            return Err(ExportError::Unit {
                key,
                message: "only a preset = \"postgres\" section can name an external server".into(),
            });
        }
        out.insert(
            name.clone(),
            host_port(url).map_err(|message| ExportError::Unit { key, message })?,
        );
    }
    Ok(out)
}

/// `postgres://user@db.example:6543/x?sslmode=…` → `db.example:6543` (default port 5432).
fn host_port(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or_else(|| format!("{url:?} must start with postgres://"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("{url:?} names no host (postgres://HOST[:PORT])"));
    }
    match host.rsplit_once(':') {
        Some((_, p)) if p.parse::<u16>().is_err() => Err(format!("{url:?}: {p:?} is not a port")),
        Some(_) => Ok(host.to_string()),
        None => Ok(format!("{host}:5432")),
    }
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn urls_give_host_and_port() {
        assert_eq!(
            host_port("postgres://db.example").unwrap(),
            "db.example:5432"
        );
        assert_eq!(
            host_port("postgresql://u:p@db:6543/x?sslmode=disable").unwrap(),
            "db:6543"
        );
        assert!(host_port("mysql://db").is_err());
        assert!(host_port("postgres://db:x").is_err());
        assert!(host_port("postgres:///x").is_err());
    }
}
