//! Responses of a route that serves user uploads (the same-origin bucket route): inert.
//!
//! Anyone who can sign up can upload `x.html` or `x.svg` with script and send the link;
//! served as the store sends it, the script would run as LobeChat's origin with the
//! victim's cookies. So whatever the store (or a presigned `response-content-type`)
//! says, every response on such a route is sandboxed, never sniffed, never embeddable
//! by other origins, and only types a browser renders without running code (raster
//! images, audio, video) may be shown inline; everything else, SVG and PDF included,
//! is a download.

use hyper::header::{HeaderMap, HeaderValue, CONTENT_DISPOSITION, CONTENT_TYPE};

/// The CSP of every upload: a sandbox that can show an image or play media, nothing else.
pub(crate) const CSP: &str = "sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'";

/// Whether a browser shows `content_type` without running anything it contains.
pub(crate) fn inline_safe(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some(("image", sub)) => !sub.is_empty() && !sub.starts_with("svg"),
        Some(("audio" | "video", sub)) => !sub.is_empty(),
        _ => false,
    }
}

/// Rewrites the headers of an upload response (see the module doc).
pub(crate) fn harden(h: &mut HeaderMap) {
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    let safe = inline_safe(h.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()));
    let attachment = h
        .get(CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("attachment")
        });
    if !safe && !attachment {
        h.insert(CONTENT_DISPOSITION, HeaderValue::from_static("attachment"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(ct: Option<&str>, cd: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(ct) = ct {
            h.insert(CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        }
        if let Some(cd) = cd {
            h.insert(CONTENT_DISPOSITION, HeaderValue::from_str(cd).unwrap());
        }
        harden(&mut h);
        h
    }

    #[test]
    fn active_and_unknown_types_become_sandboxed_downloads() {
        for ct in [
            Some("text/html; charset=utf-8"),
            Some("image/svg+xml"),
            Some("IMAGE/SVG+XML"),
            Some("application/pdf"),
            Some("application/xhtml+xml"),
            Some("text/plain"),
            Some("image/"),
            Some("garbage"),
            None,
        ] {
            let h = served(ct, Some("inline; filename=\"x.html\""));
            assert_eq!(h[CONTENT_DISPOSITION], "attachment", "{ct:?}");
            assert_eq!(h["x-content-type-options"], "nosniff");
            assert_eq!(h["content-security-policy"], CSP);
            assert_eq!(h["cross-origin-resource-policy"], "same-origin");
        }
    }

    #[test]
    fn raster_images_and_media_stay_inline_and_sandboxed() {
        for ct in [
            "image/png",
            "image/jpeg",
            "image/webp",
            "video/mp4",
            "audio/mpeg",
        ] {
            let h = served(Some(ct), None);
            assert!(!h.contains_key(CONTENT_DISPOSITION), "{ct}");
            assert_eq!(h["content-security-policy"], CSP);
        }
        // A store's own attachment is kept as it is (filename included).
        let h = served(Some("image/png"), Some("attachment; filename=\"a.png\""));
        assert_eq!(h[CONTENT_DISPOSITION], "attachment; filename=\"a.png\"");
    }
}
