//! Handling one HTTPS request: pick the site and route, then redirect, answer 503 while
//! the unit is not healthy, or forward (WebSocket upgrades included).

use super::access_log::AccessRecord;
use super::body::{RequestBody, ResponseBody};
use super::drain::Drain;
use super::forward::{self, ClientSide, Upstream};
use super::metrics::{ProxyMetrics, SiteName};
use super::routes::{strip_port, RouteTable, SiteRoutes, Target};
use super::{pages, status_page, UnitHealth};
use crate::error_chain::error_chain;
use crate::plan::ProxyPlan;
use arc_swap::ArcSwap;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, HOST, LOCATION};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Settings and routes that a reload swaps as a whole.
pub(crate) struct State {
    pub routes: RouteTable,
    pub max_body: u64,
    pub upstream_timeout: Duration,
    pub connect_timeout: Duration,
    pub header_timeout: Duration,
    /// Connections one client may hold per listener (`[proxy] max_conns_per_ip`).
    pub max_conns_per_ip: usize,
    /// Idle HTTP/2 connections close after this (`[proxy] h2_idle_timeout`).
    pub h2_idle_timeout: Duration,
    /// Idle HTTP/1.1 keep-alive connections close after this (`keepalive_timeout`).
    pub keepalive_timeout: Duration,
    pub client: Upstream,
    /// Peers whose X-Forwarded-For chain is kept.
    pub trusted_proxies: Vec<crate::plan::cidr::Cidr>,
    /// Strict-Transport-Security for every answer (None = off).
    pub hsts: Option<HeaderValue>,
}

impl State {
    /// From the plan; reuses `prev`'s upstream pool when the connect timeout is unchanged.
    pub fn new(p: &ProxyPlan, prev: Option<&State>) -> Self {
        let client = match prev {
            Some(s) if s.connect_timeout == p.connect_timeout => s.client.clone(),
            _ => forward::client(p.connect_timeout),
        };
        State {
            routes: RouteTable::new(&p.sites),
            max_body: p.max_body,
            upstream_timeout: p.upstream_timeout,
            connect_timeout: p.connect_timeout,
            header_timeout: p.header_timeout,
            max_conns_per_ip: p.max_conns_per_ip,
            h2_idle_timeout: p.h2_idle_timeout,
            keepalive_timeout: p.keepalive_timeout,
            client,
            trusted_proxies: p.trusted_proxies.clone(),
            hsts: p
                .hsts
                .as_deref()
                .and_then(|v| HeaderValue::from_str(v).ok()),
        }
    }
}

/// Everything request handling needs, shared by all connections.
pub(crate) struct Shared {
    pub state: ArcSwap<State>,
    pub health: Arc<dyn UnitHealth>,
    pub metrics: ProxyMetrics,
    /// Metrics label for requests that matched no site.
    pub no_site: SiteName,
    /// Shutdown: connections and tunnels run under it.
    pub drain: Drain,
}

/// Facts about the client connection.
pub(crate) struct ConnInfo {
    pub peer: SocketAddr,
    /// Server name the TLS client asked for.
    pub sni: Option<String>,
    /// The connection's place under `[proxy] max_connections` and `max_conns_per_ip`;
    /// tunnels keep it too.
    pub permit: Arc<super::per_ip::ConnPermit>,
}

/// The hyper service function for HTTPS connections.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let start = Instant::now();
    let state = shared.state.load_full();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            req.headers()
                .get(HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        });
    let mut upstream = shared.no_site.0.clone();
    let (site, mut resp) = match &authority {
        None => (None, pages::bad_request("The request has no Host header.")),
        Some(authority) => {
            let host = strip_port(authority);
            match state.routes.site(host) {
                None => (None, pages::unknown_host(host)),
                Some(site) => {
                    let resp = if misdirected(&state.routes, site, conn.sni.as_deref()) {
                        pages::misdirected(host)
                    } else {
                        route(&shared, &state, &conn, site, authority, req, &mut upstream).await
                    };
                    (Some(site.clone()), resp)
                }
            }
        }
    };
    security_headers(&state, resp.headers_mut());
    let rec = AccessRecord {
        method,
        host: authority.unwrap_or_default(),
        path,
        status: resp.status().as_u16(),
        upstream,
        site: site.map_or_else(|| shared.no_site.clone(), |s| SiteName(s.host.clone())),
        start,
        metrics: shared.metrics.clone(),
    };
    resp.body_mut().set_log(rec);
    Ok(resp)
}

/// HSTS (unless the upstream sent its own) and `nosniff` where the upstream set none.
fn security_headers(state: &State, h: &mut hyper::HeaderMap) {
    if let Some(v) = &state.hsts {
        h.entry(hyper::header::STRICT_TRANSPORT_SECURITY)
            .or_insert_with(|| v.clone());
    }
    h.entry(hyper::header::X_CONTENT_TYPE_OPTIONS)
        .or_insert_with(|| HeaderValue::from_static("nosniff"));
}

/// True when the TLS connection was made for another of our sites than Host names
/// (a browser reusing a connection across sites must open a new one).
fn misdirected(routes: &RouteTable, site: &Arc<SiteRoutes>, sni: Option<&str>) -> bool {
    match sni.and_then(|name| routes.site(name)) {
        Some(s) => !Arc::ptr_eq(s, site),
        None => false,
    }
}

async fn route(
    shared: &Shared,
    state: &State,
    conn: &ConnInfo,
    site: &SiteRoutes,
    authority: &str,
    req: Request<Incoming>,
    upstream: &mut Arc<str>,
) -> Response<ResponseBody> {
    let Some(route) = site.route(req.uri().path()) else {
        return pages::no_route();
    };
    if let Some(loc) = &route.redirect {
        return redirect(loc);
    }
    let Some(target) = &route.target else {
        return pages::bad_gateway();
    };
    *upstream = target.label.clone();
    if let Some(unit) = &target.unit {
        match shared.health.unit_state(unit) {
            Some(v) if v.healthy => {}
            _ => return status_page::unavailable(),
        }
    }
    let limit = route.max_body.unwrap_or(state.max_body);
    let mut resp = forward_to(state, &shared.drain, conn, authority, target, limit, req).await;
    if route.uploads {
        super::uploads::harden(resp.headers_mut());
    }
    resp
}

fn redirect(loc: &str) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::page(bytes::Bytes::new()));
    *resp.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(loc) {
        resp.headers_mut().insert(LOCATION, v);
    }
    resp
}

async fn forward_to(
    state: &State,
    drain: &Drain,
    conn: &ConnInfo,
    authority: &str,
    target: &Target,
    limit: u64,
    mut req: Request<Incoming>,
) -> Response<ResponseBody> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return pages::too_large(limit);
    }
    let upgrade = forward::is_upgrade(&req);
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let tripped = Arc::new(AtomicBool::new(false));
    let req = req.map(|b| RequestBody::new(b, limit, tripped.clone()));
    let ip = conn.peer.ip();
    let from = ClientSide {
        authority,
        ip,
        trusted: state.trusted_proxies.iter().any(|c| c.contains(ip)),
    };
    let req = match forward::upstream_request(req, &target.authority, &from, upgrade) {
        Ok(r) => r,
        Err(_) => return pages::bad_request("The request cannot be forwarded as sent."),
    };
    let result = tokio::time::timeout(state.upstream_timeout, state.client.request(req)).await;
    let mut resp = match result {
        Err(_) => {
            tracing::warn!(upstream = %target.label, "proxy: upstream did not answer within upstream_timeout ({:?})", state.upstream_timeout);
            return pages::gateway_timeout();
        }
        Ok(Err(e)) => {
            if tripped.load(Ordering::Relaxed) {
                return pages::too_large(limit);
            }
            tracing::warn!(upstream = %target.label, "proxy: upstream request failed: {}", error_chain(&e));
            return pages::bad_gateway();
        }
        Ok(Ok(r)) => r,
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            spawn_tunnel(drain, conn, client_upgrade, upstream_upgrade);
        }
        let (mut parts, body) = resp.into_parts();
        let proto = parts.headers.get(hyper::header::UPGRADE).cloned();
        forward::strip_hop_by_hop(&mut parts.headers);
        if let Some(p) = proto {
            parts.headers.insert(hyper::header::UPGRADE, p);
            parts.headers.insert(
                hyper::header::CONNECTION,
                HeaderValue::from_static("upgrade"),
            );
        }
        return Response::from_parts(parts, ResponseBody::upstream(body, state.upstream_timeout));
    }
    let (mut parts, body) = resp.into_parts();
    forward::strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, ResponseBody::upstream(body, state.upstream_timeout))
}

/// Runs the tunnel of an accepted upgrade under the drain, holding the connection's
/// place under the connection limit until it ends.
fn spawn_tunnel(
    drain: &Drain,
    conn: &ConnInfo,
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
) {
    let permit = conn.permit.clone();
    let stop = drain.clone();
    drain.spawn(async move {
        let _permit = permit;
        // A tunnel has no request boundary to finish at: it closes when the drain starts.
        tokio::select! {
            _ = tunnel(client, upstream) => {}
            _ = stop.stopped() => {}
        }
    });
}

/// Copies bytes both ways between the upgraded client and upstream connections.
async fn tunnel(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    let (c, u) = tokio::join!(client, upstream);
    match (c, u) {
        (Ok(c), Ok(u)) => {
            let mut c = TokioIo::new(c);
            let mut u = TokioIo::new(u);
            if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut u).await {
                tracing::debug!("proxy: upgraded connection ended: {e}");
            }
        }
        (c, u) => tracing::debug!(
            "proxy: upgrade not completed (client: {:?}, upstream: {:?})",
            c.err(),
            u.err()
        ),
    }
}
