//! The 503 page shown while a route's unit is not healthy: which units are starting or
//! failed (names and states only), with Retry-After so clients come back.

use super::body::ResponseBody;
use super::health::UnitView;
use super::pages::{escape, page};
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};

/// Seconds a client should wait before retrying.
const RETRY_AFTER_SECS: &str = "5";

/// 503 for `unit`; `units` lists the whole stack (healthy ones are left out).
pub(crate) fn unavailable(unit: &str, units: &[UnitView]) -> Response<ResponseBody> {
    let mut rows = String::new();
    for u in units.iter().filter(|u| !u.healthy) {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td></tr>\n",
            escape(&u.name),
            escape(&u.state)
        ));
    }
    let table = if rows.is_empty() {
        String::new()
    } else {
        format!(
            "<table><tr><th align=left>service</th><th align=left>state</th></tr>\n{rows}</table>"
        )
    };
    let body = format!(
        "<p>The service <b>{}</b> is not ready yet. This page retries in a few seconds.</p>\n{table}\
         <script>setTimeout(function(){{location.reload()}},{RETRY_AFTER_SECS}000)</script>",
        escape(unit)
    );
    let mut resp = page(StatusCode::SERVICE_UNAVAILABLE, "Starting up", &body);
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
    resp
}
