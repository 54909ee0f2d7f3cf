//! Forwarding to upstreams over a keep-alive pool: the request as the client sent it
//! (path and Host untouched, so SigV4 presigned URLs still verify) plus the
//! X-Forwarded-* headers, minus hop-by-hop headers.

use super::body::RequestBody;
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, COOKIE, HOST, PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::{Request, Uri, Version};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::net::IpAddr;
use std::time::Duration;

/// The pooled HTTP/1.1 client to upstreams.
pub(crate) type Upstream = Client<HttpConnector, RequestBody>;

/// A client with keep-alive pooling and the plan's connect timeout.
pub(crate) fn client(connect_timeout: Duration) -> Upstream {
    let mut conn = HttpConnector::new();
    conn.set_connect_timeout(Some(connect_timeout));
    conn.set_nodelay(true);
    conn.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(conn)
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
/// Forwarding headers only a trusted hop may set.
const CLIENT_FORWARDING: [&str; 4] = [
    "x-forwarded-for",
    "forwarded",
    "x-forwarded-port",
    "x-forwarded-prefix",
];
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Removes hop-by-hop headers, including any the Connection header names.
pub(crate) fn strip_hop_by_hop(h: &mut HeaderMap) {
    if h.contains_key(CONNECTION) {
        let named: Vec<HeaderName> = h
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|s| s.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        for n in named {
            h.remove(n);
        }
    }
    for n in [
        &CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &TE,
        &TRAILER,
        &TRANSFER_ENCODING,
        &UPGRADE,
        &PROXY_AUTHENTICATE,
        &PROXY_AUTHORIZATION,
    ] {
        h.remove(n);
    }
}

/// True for an HTTP/1.1 `Connection: upgrade` request with an `Upgrade` header.
pub(crate) fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(UPGRADE)
        && req
            .headers()
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|s| s.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Who asked, as the upstream must be told.
pub(crate) struct ClientSide<'a> {
    /// Host as the client sent it, with its port.
    pub authority: &'a str,
    pub ip: IpAddr,
    /// A trusted load balancer: its X-Forwarded-For chain and forwarding headers are kept.
    pub trusted: bool,
}

/// Rewrites the client's request into the upstream request for `target`.
pub(crate) fn upstream_request<B>(
    req: Request<B>,
    target: &Authority,
    from: &ClientSide<'_>,
    upgrade: bool,
) -> Result<Request<B>, hyper::http::Error> {
    let (mut parts, body) = req.into_parts();
    let mut uri = hyper::http::uri::Parts::default();
    uri.scheme = Some(Scheme::HTTP);
    uri.authority = Some(target.clone());
    uri.path_and_query = Some(
        parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    );
    parts.uri = Uri::from_parts(uri)?;
    let was_h2 = parts.version == Version::HTTP_2;
    parts.version = Version::HTTP_11;
    let h = &mut parts.headers;
    let upgrade_proto = if upgrade {
        h.get(UPGRADE).cloned()
    } else {
        None
    };
    strip_hop_by_hop(h);
    if let Some(proto) = upgrade_proto {
        h.insert(UPGRADE, proto);
        h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
    if was_h2 {
        join_cookies(h);
    }
    let authority = HeaderValue::from_str(from.authority)?;
    h.insert(HOST, authority.clone());
    h.insert(X_FORWARDED_HOST.clone(), authority);
    h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("https"));
    let ip = from.ip.to_string();
    // The proxy is the edge: what a client claims about earlier hops is dropped (Logto
    // trusts the leftmost X-Forwarded-For), unless the peer is a configured load balancer.
    if !from.trusted {
        for name in CLIENT_FORWARDING {
            h.remove(name);
        }
    }
    let xff = match h.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.trim().is_empty() => format!("{prev}, {ip}"),
        _ => ip.clone(),
    };
    h.insert(X_FORWARDED_FOR.clone(), HeaderValue::from_str(&xff)?);
    h.insert(X_REAL_IP.clone(), HeaderValue::from_str(&ip)?);
    Ok(Request::from_parts(parts, body))
}

/// HTTP/2 may split cookies over several fields; HTTP/1.1 wants one (RFC 9113 §8.2.3).
fn join_cookies(h: &mut HeaderMap) {
    if h.get_all(COOKIE).iter().nth(1).is_none() {
        return;
    }
    let joined = h
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join("; ");
    if let Ok(v) = HeaderValue::from_str(&joined) {
        h.insert(COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_headers_and_hop_by_hop() {
        let req = Request::builder()
            .uri("/bucket/a.png?X-Amz-Signature=abc")
            .header(HOST, "lobe.example.com:8443")
            .header(CONNECTION, "keep-alive, x-secret-hop")
            .header("x-secret-hop", "1")
            .header("keep-alive", "timeout=5")
            .header("x-forwarded-for", "10.0.0.1")
            .header("forwarded", "for=10.0.0.1")
            .header("x-forwarded-port", "1")
            .header("x-keep", "yes")
            .body(())
            .unwrap();
        let from = ClientSide {
            authority: "lobe.example.com:8443",
            ip: "192.0.2.7".parse().unwrap(),
            trusted: false,
        };
        let target = Authority::from_static("127.0.0.1:3210");
        let trusted = ClientSide {
            trusted: true,
            ..from
        };
        let via_lb = upstream_request(
            Request::builder()
                .header("x-forwarded-for", "10.0.0.1")
                .body(())
                .unwrap(),
            &target,
            &trusted,
            false,
        )
        .unwrap();
        assert_eq!(via_lb.headers()["x-forwarded-for"], "10.0.0.1, 192.0.2.7");
        let out = upstream_request(req, &target, &from, false).unwrap();
        assert_eq!(
            out.uri().to_string(),
            "http://127.0.0.1:3210/bucket/a.png?X-Amz-Signature=abc"
        );
        let h = out.headers();
        assert_eq!(h["host"], "lobe.example.com:8443");
        assert_eq!(h["x-forwarded-host"], "lobe.example.com:8443");
        assert_eq!(h["x-forwarded-proto"], "https");
        // The edge: a client's claims about earlier hops are dropped.
        assert_eq!(h["x-forwarded-for"], "192.0.2.7");
        assert!(h.get("forwarded").is_none() && h.get("x-forwarded-port").is_none());
        assert_eq!(h["x-real-ip"], "192.0.2.7");
        assert_eq!(h["x-keep"], "yes");
        assert!(h.get("x-secret-hop").is_none());
        assert!(h.get("keep-alive").is_none());
        assert!(h.get("connection").is_none());
    }

    #[test]
    fn upgrade_headers_survive_for_websocket() {
        let req = Request::builder()
            .uri("/ws")
            .header(HOST, "a.example.com")
            .header(CONNECTION, "Upgrade")
            .header(UPGRADE, "websocket")
            .body(())
            .unwrap();
        assert!(is_upgrade(&req));
        let from = ClientSide {
            authority: "a.example.com",
            ip: "::1".parse().unwrap(),
            trusted: false,
        };
        let target = Authority::from_static("127.0.0.1:1");
        let out = upstream_request(req, &target, &from, true).unwrap();
        assert_eq!(out.headers()["upgrade"], "websocket");
        assert_eq!(out.headers()["connection"], "upgrade");
    }
}
