//! The proxy's own small HTML answers (errors, unknown host); they never carry
//! upstream or internal error text.

use super::body::ResponseBody;
use bytes::Bytes;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};

/// A complete HTML page with a title and one paragraph (already escaped by the caller
/// via [`escape`] where it holds request data).
pub(crate) fn page(status: StatusCode, title: &str, html_body: &str) -> Response<ResponseBody> {
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{code} {title}</title>\
         <style>body{{font-family:sans-serif;max-width:40em;margin:4em auto;color:#222}}\
         td{{padding:.2em 1em .2em 0}}</style></head>\n<body><h1>{title}</h1>\n{html_body}\n</body></html>\n",
        code = status.as_u16(),
    );
    let mut resp = Response::new(ResponseBody::page(Bytes::from(html)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// 400 for a request without a usable Host.
pub(crate) fn bad_request(why: &str) -> Response<ResponseBody> {
    page(
        StatusCode::BAD_REQUEST,
        "Bad request",
        &format!("<p>{}</p>", escape(why)),
    )
}

/// 404 for a host no site serves.
pub(crate) fn unknown_host(host: &str) -> Response<ResponseBody> {
    page(
        StatusCode::NOT_FOUND,
        "Unknown site",
        &format!(
            "<p>This server has no site named <b>{}</b>.</p>",
            escape(host)
        ),
    )
}

/// 421 when Host names another site than the TLS connection was made for.
pub(crate) fn misdirected(host: &str) -> Response<ResponseBody> {
    page(
        StatusCode::MISDIRECTED_REQUEST,
        "Misdirected request",
        &format!(
            "<p>This connection was opened for another site than <b>{}</b>. Open a new connection to it.</p>",
            escape(host)
        ),
    )
}

/// 404 for a path no route of the site covers.
pub(crate) fn no_route() -> Response<ResponseBody> {
    page(
        StatusCode::NOT_FOUND,
        "Not found",
        "<p>Nothing is served at this path.</p>",
    )
}

/// 413 for a request body over the route's limit.
pub(crate) fn too_large(limit: u64) -> Response<ResponseBody> {
    page(
        StatusCode::PAYLOAD_TOO_LARGE,
        "Request too large",
        &format!("<p>The request body is larger than the {limit} bytes this address accepts.</p>"),
    )
}

/// 502 when the upstream could not be reached or broke the exchange.
pub(crate) fn bad_gateway() -> Response<ResponseBody> {
    page(
        StatusCode::BAD_GATEWAY,
        "Bad gateway",
        "<p>The service behind this address could not be reached or gave no valid answer. Try again shortly.</p>",
    )
}

/// 504 when the upstream did not answer in time.
pub(crate) fn gateway_timeout() -> Response<ResponseBody> {
    page(
        StatusCode::GATEWAY_TIMEOUT,
        "Gateway timeout",
        "<p>The service behind this address did not answer in time. Try again shortly.</p>",
    )
}

/// HTML-escapes text taken from a request or the supervisor.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
