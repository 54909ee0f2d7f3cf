//! The plain-HTTP listener's only answer: 301 to the same host, path and query on HTTPS.

use super::body::ResponseBody;
use super::pages;
use super::routes::{strip_port, RouteTable};
use bytes::Bytes;
use hyper::header::{HeaderValue, HOST, LOCATION};
use hyper::{Request, Response, StatusCode};

/// 301 to `https://HOST[:https_port]/path?query` for hosts we serve; 404/400 otherwise.
pub(crate) fn to_https<B>(
    req: &Request<B>,
    routes: &RouteTable,
    https_port: u16,
) -> Response<ResponseBody> {
    let authority = req
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    let Some(authority) = authority else {
        return pages::bad_request("The request has no Host header.");
    };
    let host = strip_port(authority);
    if routes.site(host).is_none() {
        return pages::unknown_host(host);
    }
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let location = if https_port == 443 {
        format!("https://{host}{pq}")
    } else {
        format!("https://{host}:{https_port}{pq}")
    };
    let Ok(loc) = HeaderValue::from_str(&location) else {
        return pages::bad_request("The request's Host or path cannot be redirected.");
    };
    let mut resp = Response::new(ResponseBody::page(Bytes::new()));
    *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
    resp.headers_mut().insert(LOCATION, loc);
    resp
}
