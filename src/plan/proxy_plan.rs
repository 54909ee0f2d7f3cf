//! `[proxy]` resolved: sites, route targets looked up in the plan, preset routes merged.

use super::*;
use crate::config::model::*;
use crate::config::Issue;
use std::path::{Path, PathBuf};

use super::build::BuildOptions;
use crate::stack::common::{absolute, pki_dir};

pub(super) fn proxy_plan(
    p: &ProxySection,
    stack: &StackInfo,
    base: &Path,
    units: &[Unit],
    preset_routes: Vec<(String, Route)>,
    opts: BuildOptions,
    issues: &mut Vec<Issue>,
) -> ProxyPlan {
    let pki_dir = pki_dir(stack);
    let mut sites: Vec<Site> = Vec::new();
    for (i, s) in p.site.iter().enumerate() {
        let key = format!("proxy.site.{i}");
        if sites.iter().any(|x| x.host.eq_ignore_ascii_case(&s.host)) {
            issues.push(Issue::new(
                format!("{key}.host"),
                format!("site {:?} is defined twice", s.host),
            ));
        }
        let routes = site_routes(s, &key, units, issues);
        let (cert, keyf) = site_files(p, s, &key, base, opts, issues);
        sites.push(Site {
            host: s.host.to_ascii_lowercase(),
            cert,
            key: keyf,
            routes,
        });
    }
    merge_preset_routes(&mut sites, preset_routes, p.tls, issues);
    let (trusted_proxies, hsts) = edge_settings(p, issues);
    check_limits(p, issues);
    ProxyPlan {
        https: p.https.clone(),
        hsts,
        http: p.http.clone(),
        max_body: p.max_body.0,
        trusted_proxies,
        upstream_timeout: p.upstream_timeout.0,
        connect_timeout: p.connect_timeout.0,
        header_timeout: p.header_timeout.0,
        max_connections: p.max_connections,
        max_conns_per_ip: p.max_conns_per_ip,
        h2_idle_timeout: p.h2_idle_timeout.0,
        keepalive_timeout: p.keepalive_timeout.0,
        tls: p.tls,
        ca_bundle: (p.tls == TlsMode::Internal).then(|| pki_dir.join("ca.crt")),
        pki_dir,
        sites,
    }
}

pub(super) fn resolve_target(
    to: &str,
    units: &[Unit],
    key: &str,
    issues: &mut Vec<Issue>,
) -> Option<RouteAction> {
    let (name, port_name) = match to.split_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => {
            return Some(RouteAction::Address(format!("{h}:{p}")))
        }
        Some((n, p)) => (n, Some(p)),
        None => (to, None),
    };
    let Some(u) = units.iter().find(|u| u.name == name) else {
        issues.push(Issue::new(
            key,
            format!("unknown unit {name:?} (or write host:port)"),
        ));
        return None;
    };
    let port = match port_name {
        None => u.port,
        Some(pn) => u.ports.get(pn).copied(),
    };
    match port {
        Some(port) => Some(RouteAction::Unit {
            unit: name.to_string(),
            port,
        }),
        None => {
            issues.push(Issue::new(
                key,
                match port_name {
                    None => format!("unit {name:?} has no port = …"),
                    Some(pn) => format!("unit {name:?} has no ports.{pn}"),
                },
            ));
            None
        }
    }
}

/// The operator's `routes` of one `[[proxy.site]]`; a bad one is an issue naming its key.
fn site_routes(s: &SiteSection, key: &str, units: &[Unit], issues: &mut Vec<Issue>) -> Vec<Route> {
    let mut routes = Vec::new();
    for (j, r) in s.routes.iter().enumerate() {
        let rkey = format!("{key}.routes.{j}");
        if !r.path.starts_with('/') {
            issues.push(Issue::new(format!("{rkey}.path"), "must start with '/'"));
        }
        let action = match (&r.to, &r.redirect) {
            (Some(to), None) => resolve_target(to, units, &format!("{rkey}.to"), issues),
            (None, Some(loc)) => Some(RouteAction::Redirect(loc.clone())),
            _ => {
                issues.push(Issue::new(
                    &rkey,
                    "give exactly one of to = \"unit\" or redirect = \"/path\"",
                ));
                None
            }
        };
        if let Some(action) = action {
            routes.push(Route {
                path: r.path.clone(),
                action,
                max_body: r.max_body.map(|b| b.0),
                uploads: false,
            });
        }
    }
    routes
}

/// A site's cert and key paths; with `tls = "files"` both are required (and must exist
/// when the host is checked).
fn site_files(
    p: &ProxySection,
    s: &SiteSection,
    key: &str,
    base: &Path,
    opts: BuildOptions,
    issues: &mut Vec<Issue>,
) -> (Option<PathBuf>, Option<PathBuf>) {
    let cert = s.cert.as_ref().map(|c| absolute(base, c));
    let keyf = s.key.as_ref().map(|c| absolute(base, c));
    if p.tls == TlsMode::Files {
        match (&cert, &keyf) {
            (Some(c), Some(k)) => {
                if opts.check_host {
                    for (f, what) in [(c, "cert"), (k, "key")] {
                        if !f.is_file() {
                            issues.push(Issue::new(
                                format!("{key}.{what}"),
                                format!("{} does not exist (or use tls = \"internal\")", f.display()),
                            ));
                        }
                    }
                }
            }
            _ => issues.push(Issue::new(
                key,
                format!("site {:?} needs cert and key with tls = \"files\" (or set [proxy] tls = \"internal\")", s.host),
            )),
        }
    }
    (cert, keyf)
}

/// Adds the presets' routes to their sites (made when missing); the operator's own route
/// for the same prefix wins.
fn merge_preset_routes(
    sites: &mut Vec<Site>,
    preset_routes: Vec<(String, Route)>,
    tls: TlsMode,
    issues: &mut Vec<Issue>,
) {
    for (host, route) in preset_routes {
        let host = host.to_ascii_lowercase();
        let site = match sites.iter_mut().position(|s| s.host == host) {
            Some(i) => &mut sites[i],
            None => {
                if tls == TlsMode::Files {
                    issues.push(Issue::new(
                    "proxy.site",
                    format!("add a [[proxy.site]] for {host:?} with cert and key (the presets route it), or use tls = \"internal\""),
                ));
                }
                sites.push(Site {
                    host: host.clone(),
                    cert: None,
                    key: None,
                    routes: Vec::new(),
                });
                sites.last_mut().expect("just pushed")
            }
        };
        // The operator's own route for the same prefix wins.
        if !site.routes.iter().any(|r| r.path == route.path) {
            site.routes.push(route);
        }
    }
}

/// `trusted_proxies` and `hsts`, parsed; a bad entry is an issue naming its key.
fn edge_settings(
    p: &crate::config::model::ProxySection,
    issues: &mut Vec<Issue>,
) -> (Vec<super::cidr::Cidr>, Option<String>) {
    let mut trusted_proxies = Vec::new();
    for (i, t) in p.trusted_proxies.iter().enumerate() {
        match t.parse() {
            Ok(c) => trusted_proxies.push(c),
            Err(why) => issues.push(Issue::new(format!("proxy.trusted_proxies.{i}"), why)),
        }
    }
    let hsts = match p.hsts.trim() {
        "off" => None,
        v if valid_hsts(v) => Some(v.to_string()),
        v => {
            issues.push(Issue::new(
                "proxy.hsts",
                format!("{v:?}: use \"max-age=SECONDS\" (optionally \"; includeSubDomains\") or \"off\""),
            ));
            None
        }
    };
    (trusted_proxies, hsts)
}

/// Limits of zero would refuse every client or close every connection at once: a typo,
/// never a setting.
fn check_limits(p: &crate::config::model::ProxySection, issues: &mut Vec<Issue>) {
    for (key, n) in [
        ("max_connections", p.max_connections),
        ("max_conns_per_ip", p.max_conns_per_ip),
    ] {
        if n == 0 {
            issues.push(Issue::new(format!("proxy.{key}"), "must be at least 1"));
        }
    }
    for (key, d) in [
        ("h2_idle_timeout", p.h2_idle_timeout),
        ("keepalive_timeout", p.keepalive_timeout),
        ("header_timeout", p.header_timeout),
    ] {
        if d.0.is_zero() {
            issues.push(Issue::new(format!("proxy.{key}"), "must be longer than 0s"));
        }
    }
}

/// `max-age=N` first, then only `includeSubDomains` / `preload` directives.
fn valid_hsts(v: &str) -> bool {
    let mut parts = v.split(';').map(str::trim);
    let age_ok = parts
        .next()
        .and_then(|a| a.strip_prefix("max-age="))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    age_ok
        && parts.all(|d| {
            d.eq_ignore_ascii_case("includeSubDomains") || d.eq_ignore_ascii_case("preload")
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn zero_limits_are_located_errors() {
        let text = r#"
[stack]
data_dir = "/tmp/pstest-limits"
[proxy]
tls = "internal"
max_conns_per_ip = 0
keepalive_timeout = "0s"
[[proxy.site]]
host = "a.test"
routes = [{ path = "/", to = "w" }]
[services.w]
command = ["/bin/sleep", "100"]
port = 18081
"#;
        let (cfg, src) = crate::config::load_str("stack.toml", None, text.into()).unwrap();
        let opts = crate::plan::BuildOptions { check_host: false };
        let err = crate::plan::build(&cfg, &src, opts)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("stack.toml:6: proxy.max_conns_per_ip: must be at least 1"),
            "{err}"
        );
        assert!(
            err.contains("stack.toml:7: proxy.keepalive_timeout: must be longer than 0s"),
            "{err}"
        );
    }
}
