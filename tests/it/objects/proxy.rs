//! The same-origin bucket route through our TLS proxy: URLs presigned for the app origin
//! (`https://lobe.example.com:PORT`) verify at s3s-fs, which checks SigV4 — so the proxy
//! passed Host and path through untouched.

use crate::support::http::{curl_async, tls_args};
use crate::support::objects::{proxied_store_plan, s3s_fs, start_proxy};
use prometheus_stack::stack::objects::s3::{object_path, S3Client, S3Credentials};
use std::time::Duration;

const HTTPS_PORT: u16 = 26443;

/// A client of the store with this key, and the bucket `lobe` made.
async fn store_with_bucket(endpoint: &str, key: &str, secret: &str) -> S3Client {
    let c = S3Client::new(
        endpoint,
        S3Credentials {
            access_key: key.into(),
            secret_key: secret.into(),
            region: "us-east-1".into(),
        },
    )
    .unwrap();
    c.create_bucket("lobe").await.unwrap();
    c
}
/// The inert-uploads test's proxy (the two tests of this file run at once).
const INERT_PORT: u16 = 26448;

#[tokio::test]
async fn presigned_put_and_get_through_tls_proxy_on_app_origin_s3s_fs() {
    let s = s3s_fs("proxykey", "proxysecret1234");
    let tmp = tempfile::tempdir().unwrap();
    let p = proxied_store_plan(tmp.path(), HTTPS_PORT, s.port);
    let proxy = start_proxy(&p).await;
    let origin = format!("https://lobe.example.com:{HTTPS_PORT}");

    let c = store_with_bucket(&s.endpoint(), "proxykey", "proxysecret1234").await;
    let tls = tls_args(
        &tmp.path().join("pki/ca.crt"),
        "lobe.example.com",
        HTTPS_PORT,
    );
    let with_tls = |extra: &[&str]| {
        let mut a = tls.clone();
        a.extend(extra.iter().map(|s| s.to_string()));
        curl_async(a)
    };

    let path = object_path("lobe", "files/ä photo.png");
    let put = c
        .presign(&origin, "PUT", &path, Duration::from_secs(300))
        .unwrap();
    assert!(put.starts_with(&origin), "{put}");
    let (st, body) = with_tls(&["-X", "PUT", "--data-binary", "image bytes", &put]).await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let get = c
        .presign(&origin, "GET", &path, Duration::from_secs(300))
        .unwrap();
    let (st, body) = with_tls(&[&get]).await;
    assert_eq!(st, 200);
    assert_eq!(body, b"image bytes");
    // The store really holds it (not a proxy cache or the app).
    assert_eq!(
        &c.get_object("lobe", "files/ä photo.png").await.unwrap()[..],
        b"image bytes"
    );

    // Still verified behind the proxy: tampered and anonymous requests are refused.
    let other = get.replace("/files/", "/other/");
    assert_eq!(with_tls(&[&other]).await.0, 403);
    assert_eq!(with_tls(&[&format!("{origin}{path}")]).await.0, 403);
    assert_eq!(
        with_tls(&[
            "-X",
            "PUT",
            "--data-binary",
            "x",
            &format!("{origin}/lobe/anon.txt")
        ])
        .await
        .0,
        403
    );
    // A URL presigned for the store's loopback address does not verify on the app origin.
    let loopback = c
        .presign(&s.endpoint(), "GET", &path, Duration::from_secs(300))
        .unwrap();
    let moved = loopback.replace(&s.endpoint(), &origin);
    assert_eq!(with_tls(&[&moved]).await.0, 403);
    proxy.shutdown().await;
}

/// Headers of a GET through the proxy (curl -D), lower-cased names.
async fn response_headers(args: Vec<String>) -> (u16, Vec<(String, String)>) {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-D", "-"])
            .args(&args)
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mut lines = text.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        (status, headers)
    })
    .await
    .unwrap()
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Security issue point 1: anyone who can sign up can upload HTML or SVG with script;
/// through the bucket route on LobeChat's origin they must come back inert.
#[tokio::test]
async fn uploads_are_served_inert_on_the_app_origin() {
    let s = s3s_fs("inertkey", "inertsecret1234");
    let tmp = tempfile::tempdir().unwrap();
    let p = proxied_store_plan(tmp.path(), INERT_PORT, s.port);
    let proxy = start_proxy(&p).await;
    let origin = format!("https://lobe.example.com:{}", INERT_PORT);
    let c = store_with_bucket(&s.endpoint(), "inertkey", "inertsecret1234").await;
    let tls = tls_args(
        &tmp.path().join("pki/ca.crt"),
        "lobe.example.com",
        INERT_PORT,
    );
    let script = "<script>fetch('/api/user').then(r=>r.text()).then(alert)</script>";
    for (name, ctype, body, inline) in [
        ("x.html", "text/html", script.to_string(), false),
        (
            "x.svg",
            "image/svg+xml",
            format!("<svg xmlns=\"http://www.w3.org/2000/svg\">{script}</svg>"),
            false,
        ),
        ("x.png", "image/png", "\u{89}PNG fake".to_string(), true),
    ] {
        let path = object_path("lobe", &format!("files/{name}"));
        let put = c
            .presign(&origin, "PUT", &path, Duration::from_secs(300))
            .unwrap();
        let mut a = tls.clone();
        a.extend(["-X", "PUT", "-H", &format!("content-type: {ctype}")].map(String::from));
        a.extend(["--data-binary".to_string(), body.clone(), put]);
        assert_eq!(curl_async(a).await.0, 200, "{name}");
        let get = c
            .presign(&origin, "GET", &path, Duration::from_secs(300))
            .unwrap();
        let mut a = tls.clone();
        a.push(get);
        let (st, h) = response_headers(a).await;
        assert_eq!(st, 200, "{name}: {h:?}");
        assert_eq!(
            header(&h, "x-content-type-options"),
            Some("nosniff"),
            "{name}"
        );
        let csp = header(&h, "content-security-policy").unwrap_or("");
        assert!(
            csp.starts_with("sandbox;") && csp.contains("default-src 'none'"),
            "{name}: {csp}"
        );
        assert_eq!(
            header(&h, "cross-origin-resource-policy"),
            Some("same-origin")
        );
        let disposition = header(&h, "content-disposition").unwrap_or("");
        assert_eq!(
            disposition.starts_with("attachment"),
            !inline,
            "{name} ({:?}): content-disposition {disposition:?}",
            header(&h, "content-type")
        );
    }
    proxy.shutdown().await;
}
