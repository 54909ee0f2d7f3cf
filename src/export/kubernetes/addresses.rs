//! Loopback addresses of one server become Service names in the cluster.
//!
//! On one host every unit reaches another at `127.0.0.1:PORT`; in the cluster each
//! longrun unit is a Service named after it, keeping its ports. So the rewrite is a
//! lookup in the plan's own ports, not a second derivation: `127.0.0.1:25432` becomes
//! `postgres:25432` because the plan says port 25432 is unit postgres'.

use crate::plan::{Plan, UnitKind};
use std::collections::BTreeMap;

/// Which longrun unit owns which port, from the plan.
#[derive(Debug, Clone, Default)]
pub struct ServiceMap {
    by_port: BTreeMap<u16, String>,
    /// Units served from outside the cluster (`external_url`): unit → `HOST:PORT`.
    external: BTreeMap<String, String>,
}

impl ServiceMap {
    /// Every longrun unit's main and named ports.
    pub fn new(plan: &Plan) -> Self {
        let mut by_port = BTreeMap::new();
        for u in plan.units.iter().filter(|u| u.kind == UnitKind::Longrun) {
            for p in u.port.iter().chain(u.ports.values()) {
                by_port.insert(*p, u.name.clone());
            }
        }
        ServiceMap {
            by_port,
            external: BTreeMap::new(),
        }
    }

    /// [`ServiceMap::new`] with units served from outside (unit → `HOST:PORT`).
    pub fn with_external(plan: &Plan, external: BTreeMap<String, String>) -> Self {
        ServiceMap {
            external,
            ..ServiceMap::new(plan)
        }
    }

    /// Whether `unit` is served from outside the cluster (no workload of its own).
    pub fn is_external(&self, unit: &str) -> bool {
        self.external.contains_key(unit)
    }

    /// Where the cluster reaches `unit`'s `port`: its Service, or its external server.
    pub fn target(&self, unit: &str, port: u16) -> String {
        match self.external.get(unit) {
            Some(addr) => addr.clone(),
            None => format!("{unit}:{port}"),
        }
    }

    /// The unit listening on `port`.
    pub fn owner(&self, port: u16) -> Option<&str> {
        self.by_port.get(&port).map(String::as_str)
    }

    /// Every (port, unit) pair.
    pub fn ports(&self) -> impl Iterator<Item = (u16, &str)> {
        self.by_port.iter().map(|(p, u)| (*p, u.as_str()))
    }

    /// `text` as unit `own` sees it in the cluster: another unit's loopback address
    /// becomes its Service; its own bare listen address (`127.0.0.1:P`, not a URL)
    /// becomes `0.0.0.0:P` so the Service reaches it; its own URLs stay on loopback.
    pub fn rewrite(&self, own: &str, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some((start, host_len)) = next_loopback(rest) {
            let after = &rest[start + host_len + 1..];
            let digits = after.chars().take_while(char::is_ascii_digit).count();
            let port = after[..digits].parse::<u16>().ok();
            let is_url = rest[..start].ends_with("://");
            out.push_str(&rest[..start]);
            match port.and_then(|p| self.owner(p).map(|u| (p, u))) {
                Some((p, unit)) if unit != own => out.push_str(&self.target(unit, p)),
                Some((p, _)) if !is_url => out.push_str(&format!("0.0.0.0:{p}")),
                _ => out.push_str(&rest[start..start + host_len + 1 + digits]),
            }
            rest = &after[digits..];
        }
        out.push_str(rest);
        out
    }
}

/// The next `127.0.0.1:` or `localhost:` in `s`: (offset, host length).
fn next_loopback(s: &str) -> Option<(usize, usize)> {
    ["127.0.0.1:", "localhost:"]
        .iter()
        .filter_map(|h| s.find(h).map(|i| (i, h.len() - 1)))
        .min()
}

/// Bind settings that are not `HOST:PORT`: a server told to listen on loopback only
/// would be unreachable through its Service. Next.js' standalone server (LobeChat)
/// binds `HOSTNAME`; PostgreSQL binds `listen_addresses`.
pub fn listen_rewrite(key: &str, value: &str) -> Option<String> {
    let loopback = value == "localhost" || value == "127.0.0.1";
    match key {
        "HOSTNAME" if loopback => Some("0.0.0.0".into()),
        _ => value
            .strip_prefix("listen_addresses=")
            .filter(|v| *v == "127.0.0.1" || *v == "localhost")
            .map(|_| "listen_addresses=*".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> ServiceMap {
        let mut by_port = BTreeMap::new();
        by_port.insert(25432, "postgres".to_string());
        by_port.insert(29000, "objects".to_string());
        by_port.insert(3210, "lobechat".to_string());
        by_port.insert(25433, "managed".to_string());
        ServiceMap {
            by_port,
            external: BTreeMap::from([("managed".to_string(), "db.example:5432".to_string())]),
        }
    }

    #[test]
    fn other_units_become_services_own_listen_addresses_open_up() {
        let m = map();
        assert_eq!(
            m.rewrite("lobechat", "postgres://u:p@127.0.0.1:25432/db"),
            "postgres://u:p@postgres:25432/db"
        );
        assert_eq!(m.rewrite("objects", "127.0.0.1:29000"), "0.0.0.0:29000");
        assert_eq!(
            m.rewrite("lobechat", "http://127.0.0.1:3210"),
            "http://127.0.0.1:3210"
        );
        assert_eq!(
            m.rewrite("x", "localhost:9 and 127.0.0.1:29000/a"),
            "localhost:9 and objects:29000/a"
        );
        assert_eq!(m.rewrite("x", "no address"), "no address");
        assert_eq!(m.rewrite("x", "@127.0.0.1:25433/db"), "@db.example:5432/db");
    }

    #[test]
    fn bind_settings_open_up() {
        assert_eq!(
            listen_rewrite("HOSTNAME", "localhost").as_deref(),
            Some("0.0.0.0")
        );
        assert_eq!(
            listen_rewrite("", "listen_addresses=127.0.0.1").as_deref(),
            Some("listen_addresses=*")
        );
        assert_eq!(listen_rewrite("PORT", "localhost"), None);
    }
}
