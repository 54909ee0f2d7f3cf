//! Route selection: the site by host (exact, then `*.suffix` wildcard), then the
//! longest matching path prefix on that site.

use crate::plan::{RouteAction, Site};
use hyper::http::uri::Authority;
use std::collections::HashMap;
use std::sync::Arc;

/// Where a forwarding route sends requests, resolved once per plan.
#[derive(Debug)]
pub(crate) struct Target {
    pub authority: Authority,
    /// The unit whose health gates the route.
    pub unit: Option<String>,
    /// `unit NAME host:port` or `host:port`, for the access log.
    pub label: Arc<str>,
}

/// One route of a site, ready to serve.
#[derive(Debug)]
pub(crate) struct Route {
    pub path: String,
    /// Redirect location, for redirect routes.
    pub redirect: Option<String>,
    /// None for redirects, and for an address that is not a valid `host:port` (502).
    pub target: Option<Target>,
    pub max_body: Option<u64>,
    /// Responses are user uploads: rewritten by `uploads::harden`.
    pub uploads: bool,
}

impl Route {
    fn new(r: &crate::plan::Route) -> Self {
        let (redirect, target) = match &r.action {
            RouteAction::Redirect(loc) => (Some(loc.clone()), None),
            RouteAction::Address(a) => (None, target(a, None)),
            RouteAction::Unit { unit, port } => {
                (None, target(&format!("127.0.0.1:{port}"), Some(unit)))
            }
        };
        Route {
            path: r.path.clone(),
            redirect,
            target,
            max_body: r.max_body,
            uploads: r.uploads,
        }
    }
}

fn target(addr: &str, unit: Option<&String>) -> Option<Target> {
    match addr.parse::<Authority>() {
        Ok(authority) => Some(Target {
            authority,
            unit: unit.cloned(),
            label: Arc::from(match unit {
                Some(u) => format!("{u} {addr}"),
                None => addr.to_string(),
            }),
        }),
        Err(e) => {
            tracing::error!("proxy: route target {addr:?} is not host:port ({e}); it answers 502");
            None
        }
    }
}

/// One site's routes, longest prefix first.
#[derive(Debug)]
pub(crate) struct SiteRoutes {
    /// As configured (lowercase, may start with `*.`); also the metrics label.
    pub host: Arc<str>,
    routes: Vec<Route>,
}

impl SiteRoutes {
    /// The route with the longest prefix that matches `path` on a segment boundary
    /// (`/bucket` matches `/bucket` and `/bucket/x`, not `/bucketx`).
    pub fn route(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| prefix_matches(&r.path, path))
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" || prefix.ends_with('/') {
        return path.starts_with(prefix);
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// All sites, indexed for lookup by host.
#[derive(Debug, Default)]
pub(crate) struct RouteTable {
    exact: HashMap<String, Arc<SiteRoutes>>,
    /// (".example.com", site) for `*.example.com`, longest suffix first.
    wildcard: Vec<(String, Arc<SiteRoutes>)>,
}

impl RouteTable {
    /// Builds the table from the plan's sites.
    pub fn new(sites: &[Site]) -> Self {
        let mut t = RouteTable::default();
        for s in sites {
            let mut routes: Vec<Route> = s.routes.iter().map(Route::new).collect();
            routes.sort_by_key(|r| std::cmp::Reverse(r.path.len()));
            let site = Arc::new(SiteRoutes {
                host: Arc::from(s.host.to_ascii_lowercase()),
                routes,
            });
            match s.host.strip_prefix('*') {
                Some(suffix) if suffix.starts_with('.') => {
                    t.wildcard.push((suffix.to_ascii_lowercase(), site))
                }
                _ => {
                    t.exact.insert(s.host.to_ascii_lowercase(), site);
                }
            }
        }
        t.wildcard.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        t
    }

    /// The site serving `host` (no port, any case).
    pub fn site(&self, host: &str) -> Option<&Arc<SiteRoutes>> {
        let host = host.trim_end_matches('.');
        let lower;
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = host.to_ascii_lowercase();
            lower.as_str()
        } else {
            host
        };
        if let Some(s) = self.exact.get(host) {
            return Some(s);
        }
        wildcard_lookup(&self.wildcard, host)
    }
}

/// `*.example.com` covers exactly one more label (`a.example.com`, not
/// `example.com` nor `a.b.example.com`), as certificates do.
pub(crate) fn wildcard_lookup<'a, T>(list: &'a [(String, T)], host: &str) -> Option<&'a T> {
    list.iter().find_map(|(suffix, v)| {
        let label = host.strip_suffix(suffix.as_str())?;
        (!label.is_empty() && !label.contains('.')).then_some(v)
    })
}

/// Splits `host[:port]` (also `[v6]:port`) and returns the host part.
pub(crate) fn strip_port(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(host: &str, paths: &[&str]) -> Site {
        Site {
            host: host.into(),
            cert: None,
            key: None,
            routes: paths
                .iter()
                .map(|p| crate::plan::Route {
                    path: p.to_string(),
                    action: RouteAction::Address(format!("127.0.0.1:1{}", p.len())),
                    max_body: None,
                    uploads: false,
                })
                .collect(),
        }
    }

    #[test]
    fn exact_then_wildcard_then_longest_prefix() {
        let t = RouteTable::new(&[
            site("lobe.example.com", &["/", "/bucket", "/bucket/private/"]),
            site("*.example.com", &["/"]),
        ]);
        let lobe = t.site("LOBE.example.com").unwrap();
        assert_eq!(&*lobe.host, "lobe.example.com");
        assert_eq!(lobe.route("/bucket/a.png").unwrap().path, "/bucket");
        assert_eq!(lobe.route("/bucket").unwrap().path, "/bucket");
        assert_eq!(lobe.route("/bucketx").unwrap().path, "/");
        assert_eq!(
            lobe.route("/bucket/private/x").unwrap().path,
            "/bucket/private/"
        );
        assert_eq!(&*t.site("auth.example.com").unwrap().host, "*.example.com");
        assert!(t.site("a.b.example.com").is_none());
        assert!(t.site("example.com").is_none());
        assert!(t.site("other.org").is_none());
    }

    #[test]
    fn ports_are_stripped() {
        assert_eq!(strip_port("a.example.com:8443"), "a.example.com");
        assert_eq!(strip_port("a.example.com"), "a.example.com");
        assert_eq!(strip_port("[::1]:443"), "::1");
    }
}
