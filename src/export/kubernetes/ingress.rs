//! The proxy's sites as Ingresses (ingress-nginx annotations) or Gateway API HTTPRoutes.
//!
//! A body limit is per object in both APIs, so a site's routes are grouped by their
//! effective limit (the route's, else `[proxy] max_body`): the bucket route's 5 GiB
//! gets its own object. Gateway API has no standard body-size field; the limit rides
//! as an annotation for the gateway's policy (README "Outgrowing one server").

use super::objects::Ctx;
use super::{IngressMode, MAX_BODY_ANNOTATION};
use crate::plan::{ProxyPlan, Route, RouteAction, Site};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Every routing object of the plan's proxy.
pub fn routes(ctx: &Ctx) -> Vec<Value> {
    let Some(proxy) = &ctx.plan.proxy else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for site in &proxy.sites {
        let groups = by_limit(proxy, site);
        for (i, (limit, routes)) in groups.iter().enumerate() {
            let base = site.host.replace('.', "-");
            let name = if i == 0 { base } else { format!("{base}-{i}") };
            out.push(match ctx.opts.ingress {
                IngressMode::Ingress => ingress(ctx, proxy, site, &name, *limit, routes),
                IngressMode::Gateway => http_route(ctx, proxy, site, &name, *limit, routes),
            });
        }
    }
    out
}

/// The site's unit routes by effective body limit, in the plan's order within each.
fn by_limit<'a>(proxy: &ProxyPlan, site: &'a Site) -> BTreeMap<u64, Vec<&'a Route>> {
    let mut out: BTreeMap<u64, Vec<&Route>> = BTreeMap::new();
    for r in site
        .routes
        .iter()
        .filter(|r| matches!(r.action, RouteAction::Unit { .. }))
    {
        out.entry(r.max_body.unwrap_or(proxy.max_body))
            .or_default()
            .push(r);
    }
    out
}

fn backend(r: &Route) -> (&str, u16) {
    match &r.action {
        RouteAction::Unit { unit, port } => (unit, *port),
        _ => ("", 0),
    }
}

fn ingress(
    ctx: &Ctx,
    proxy: &ProxyPlan,
    site: &Site,
    name: &str,
    limit: u64,
    routes: &[&Route],
) -> Value {
    let timeout = proxy.upstream_timeout.as_secs().max(1).to_string();
    let mut annotations = json!({
        MAX_BODY_ANNOTATION: limit.to_string(),
        "nginx.ingress.kubernetes.io/proxy-body-size": limit.to_string(),
        "nginx.ingress.kubernetes.io/proxy-read-timeout": timeout,
        "nginx.ingress.kubernetes.io/proxy-send-timeout": timeout,
        "nginx.ingress.kubernetes.io/proxy-connect-timeout": proxy.connect_timeout.as_secs().clamp(1, 75).to_string(),
    });
    if let Some(issuer) = &ctx.opts.cluster_issuer {
        annotations["cert-manager.io/cluster-issuer"] = json!(issuer);
    }
    let paths: Vec<Value> = routes
        .iter()
        .map(|r| {
            let (svc, port) = backend(r);
            json!({"path": r.path, "pathType": "Prefix",
                   "backend": {"service": {"name": svc, "port": {"number": port}}}})
        })
        .collect();
    let mut meta = ctx.meta(name);
    meta["annotations"] = annotations;
    let mut spec = json!({
        "tls": [{"hosts": [site.host], "secretName": format!("{}-tls", site.host.replace('.', "-"))}],
        "rules": [{"host": site.host, "http": {"paths": paths}}]
    });
    if let Some(class) = &ctx.opts.ingress_class {
        spec["ingressClassName"] = json!(class);
    }
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec})
}

fn http_route(
    ctx: &Ctx,
    proxy: &ProxyPlan,
    site: &Site,
    name: &str,
    limit: u64,
    routes: &[&Route],
) -> Value {
    let timeout = format!("{}s", proxy.upstream_timeout.as_secs().max(1));
    let rules: Vec<Value> = routes
        .iter()
        .map(|r| {
            let (svc, port) = backend(r);
            json!({
                "matches": [{"path": {"type": "PathPrefix", "value": r.path}}],
                "backendRefs": [{"name": svc, "port": port}],
                "timeouts": {"request": timeout}
            })
        })
        .collect();
    let parent = match ctx.opts.gateway.split_once('/') {
        Some((ns, gw)) => json!({"name": gw, "namespace": ns}),
        None => json!({"name": ctx.opts.gateway}),
    };
    let mut meta = ctx.meta(name);
    meta["annotations"] = json!({MAX_BODY_ANNOTATION: limit.to_string()});
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": meta,
        "spec": {"parentRefs": [parent], "hostnames": [site.host], "rules": rules}
    })
}
