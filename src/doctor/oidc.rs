//! The OIDC issuer LobeChat is given (its unit env) is the one Logto's discovery document
//! says, read through our proxy — the mismatch that makes every login fail.

use super::Finding;
use crate::plan::Plan;
use std::net::{SocketAddr, ToSocketAddrs};

/// Env keys that carry an OIDC issuer URL to a unit.
pub const ISSUER_ENV: &str = "AUTH_LOGTO_ISSUER";

/// Each unit given an issuer: fetch `ISSUER/.well-known/openid-configuration` through the
/// proxy (its listen address when the issuer's host is one of its sites) and compare.
pub async fn check_issuer(plan: &Plan) -> Vec<Finding> {
    let mut out = Vec::new();
    for u in &plan.units {
        let Some(given) = u.env.get(ISSUER_ENV).and_then(|v| v.as_text()) else {
            continue;
        };
        let Some((host, port, path)) = split_https(&given) else {
            out.push(Finding::error("oidc", format!("unit {} is given issuer {given:?} (env {ISSUER_ENV}), not an https:// URL", u.name), format!("set {}.env.{ISSUER_ENV} to https://AUTH_HOST/oidc or remove it (the preset derives it)", u.config_key)));
            continue;
        };
        let url = format!(
            "{}/.well-known/openid-configuration",
            given.trim_end_matches('/')
        );
        let Some(addr) = target(plan, &host, port) else {
            out.push(Finding::error(
                "oidc",
                format!("cannot reach {url}: {host} resolves to no address"),
                format!("fix DNS of {host} (see the dns findings)"),
            ));
            continue;
        };
        let doc_path = format!(
            "{}/.well-known/openid-configuration",
            path.trim_end_matches('/')
        );
        let fix_reach = format!("make Logto healthy and routed on {host} (`prometheus-stack status`, `prometheus-stack logs` of the logto unit)");
        let doc = match super::https::get_via(addr, &host, &doc_path).await {
            Ok((200, body)) => serde_json::from_slice::<serde_json::Value>(&body).ok(),
            Ok((status, _)) => {
                out.push(Finding::error("oidc", format!("Logto's discovery document {url} answers HTTP {status} through the proxy ({addr})"), fix_reach));
                continue;
            }
            Err(e) => {
                out.push(Finding::error(
                    "oidc",
                    format!("cannot read Logto's discovery document {url} through the proxy: {e}"),
                    fix_reach,
                ));
                continue;
            }
        };
        let Some(said) = doc.as_ref().and_then(|d| d["issuer"].as_str()) else {
            out.push(Finding::error(
                "oidc",
                format!("{url} is not an OIDC discovery document (no \"issuer\")"),
                fix_reach,
            ));
            continue;
        };
        if said != given {
            out.push(Finding::error(
                "oidc",
                format!("unit {} is given issuer {given} (env {ISSUER_ENV}) but Logto's discovery document says {said}", u.name),
                format!("make them agree: remove {}.env.{ISSUER_ENV} (the preset derives it from Logto's endpoint) or set Logto's ENDPOINT to the public auth URL, then `prometheus-stack reload`", u.config_key),
            ));
        }
    }
    out
}

/// `https://host[:port]/path` → (host, port, path).
fn split_https(url: &str) -> Option<(String, u16, String)> {
    let rest = url.strip_prefix("https://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (authority, 443),
    };
    (!host.is_empty()).then(|| (host.to_string(), port, path.to_string()))
}

/// Our proxy's listener when it serves `host` (loopback for a wildcard listen), else DNS.
fn target(plan: &Plan, host: &str, port: u16) -> Option<SocketAddr> {
    if let Some(p) = &plan.proxy {
        if p.sites.iter().any(|s| s.host.eq_ignore_ascii_case(host)) {
            if let Ok(mut a) = p.https.parse::<SocketAddr>() {
                if a.ip().is_unspecified() {
                    a.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                return Some(a);
            }
        }
    }
    (host, port).to_socket_addrs().ok()?.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_issuer_urls() {
        assert_eq!(
            split_https("https://auth.x.org/oidc"),
            Some(("auth.x.org".into(), 443, "/oidc".into()))
        );
        assert_eq!(
            split_https("https://auth.x.org:8443/oidc"),
            Some(("auth.x.org".into(), 8443, "/oidc".into()))
        );
        assert_eq!(split_https("http://auth.x.org/oidc"), None);
    }
}
