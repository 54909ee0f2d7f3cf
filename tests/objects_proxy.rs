//! The same-origin bucket route through our TLS proxy: URLs presigned for the app origin
//! (`https://lobe.example.com:PORT`) verify at s3s-fs, which checks SigV4 — so the proxy
//! passed Host and path through untouched.

mod common;
mod common_objects;

use common_objects::{curl_async, proxied_store_plan, s3s_fs, start_proxy, tls_args};
use prometheus_stack::stack::objects::s3::{object_path, S3Client, S3Credentials};
use std::time::Duration;

const HTTPS_PORT: u16 = 26443;

#[tokio::test]
async fn presigned_put_and_get_through_tls_proxy_on_app_origin_s3s_fs() {
    let s = s3s_fs("proxykey", "proxysecret1234");
    let tmp = tempfile::tempdir().unwrap();
    let p = proxied_store_plan(tmp.path(), HTTPS_PORT, s.port);
    let proxy = start_proxy(&p).await;
    let origin = format!("https://lobe.example.com:{HTTPS_PORT}");

    let c = S3Client::new(
        &s.endpoint(),
        S3Credentials {
            access_key: "proxykey".into(),
            secret_key: "proxysecret1234".into(),
            region: "us-east-1".into(),
        },
    )
    .unwrap();
    c.create_bucket("lobe").await.unwrap();
    let tls = tls_args(tmp.path(), "lobe.example.com", HTTPS_PORT);
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
