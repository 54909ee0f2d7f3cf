//! The 503 page shown while a route's unit is not healthy. It is public: it says the
//! service is starting and names nothing inside the stack (unit names and states are
//! for `prometheus-stack status` and the access log), with Retry-After so clients come back.

use super::body::ResponseBody;
use super::pages::page;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};

/// Seconds a client should wait before retrying.
const RETRY_AFTER_SECS: &str = "5";

/// 503 while the route's unit is not healthy.
pub(crate) fn unavailable() -> Response<ResponseBody> {
    let body = format!(
        "<p>This service is starting or restarting. This page retries in a few seconds.</p>\n\
         <script>setTimeout(function(){{location.reload()}},{RETRY_AFTER_SECS}000)</script>"
    );
    let mut resp = page(StatusCode::SERVICE_UNAVAILABLE, "Starting up", &body);
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
    resp
}
