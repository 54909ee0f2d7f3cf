//! The proxy's abuse limits and observability with real clients: header read timeout
//! (slowloris), malformed and oversized requests, the connection limit, access log
//! lines and metrics.

use crate::support::http::curl_via;
use crate::support::proxy::site::setup;
use crate::support::proxy::*;
use prometheus_stack::proxy::{AlwaysHealthy, UnitHealth};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn healthy() -> Arc<dyn UnitHealth> {
    Arc::new(AlwaysHealthy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_malformed_requests_and_the_connection_limit() {
    let (s, toml) = setup(
        r#"{ path = "/", to = "UP" }"#,
        "header_timeout = \"1s\"\nmax_connections = 3",
        "",
    )
    .await;
    let proxy = start(plan(&toml), healthy()).await;
    let addr = proxy.local_addrs().https;
    let client = TlsClient::new(&s.ca.pem, &[b"http/1.1"]);

    // Half a request head, then silence: closed after the header timeout.
    let mut slow = client.connect(addr, "f.test").await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: f.te")
        .await
        .unwrap();
    let t = std::time::Instant::now();
    let mut buf = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
    assert!(r.is_ok(), "slow client not cut off");
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );
    drop(slow);

    // Garbage gets 400; the next connection is served normally.
    let mut bad = client.connect(addr, "f.test").await.unwrap();
    bad.write_all(b"HELLO THERE\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), bad.read_to_end(&mut buf)).await;
    assert!(
        String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    let mut huge = client.connect(addr, "f.test").await.unwrap();
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: f.test\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100_000)
    );
    let _ = huge.write_all(big_header.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), huge.read_to_end(&mut buf)).await;
    assert!(
        String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    // The same over HTTP/2: the header list limit refuses it.
    let big = format!("X-Big: {}", "a".repeat(100_000));
    let mut c = curl_via(&s.ca_file, "f.test", addr);
    c.args([
        "--http2",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        &big,
    ])
    .arg(format!("https://f.test:{}/", addr.port()));
    let out = c.output().unwrap();
    let code = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        code == "431" || !out.status.success(),
        "oversized h2 headers answered: {code}"
    );
    let mut ok = client.h1(addr, "f.test").await;
    assert_eq!(get1(&mut ok, "f.test", "/").await.status, 200);
    drop(ok);
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Three connections open; a fourth waits (no handshake) until one closes.
    let held: Vec<_> =
        futures_util::future::join_all((0..3).map(|_| client.h1(addr, "f.test"))).await;
    let fourth = tokio::spawn({
        let client = client.clone();
        async move { client.connect(addr, "f.test").await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !fourth.is_finished(),
        "4th connection served beyond max_connections = 3"
    );
    assert_eq!(proxy.metrics().open_connections(), 3);
    drop(held);
    let tls = tokio::time::timeout(Duration::from_secs(5), fourth)
        .await
        .unwrap()
        .unwrap();
    assert!(tls.is_ok());
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_and_metrics() {
    captured_logs();
    let (s, toml) = setup(r#"{ path = "/", to = "UP" }"#, "", "").await;
    let proxy = start(plan(&toml), healthy()).await;
    let addr = proxy.local_addrs().https;
    let client = TlsClient::new(&s.ca.pem, &[b"http/1.1"]);
    let mut h1 = client.h1(addr, "f.test").await;
    assert_eq!(
        get1(&mut h1, "f.test", "/big?token=secret123")
            .await
            .body
            .len(),
        1 << 20
    );
    assert_eq!(get1(&mut h1, "nosuch.test", "/").await.status, 404);
    let seen = eventually(Duration::from_secs(2), || {
        logs_text().contains("path=/big ")
    })
    .await;
    let logs = logs_text();
    assert!(seen, "{logs}");
    let line = logs.lines().find(|l| l.contains("path=/big ")).unwrap();
    for part in [
        "proxy::access",
        "method=GET",
        "host=f.test",
        "status=200",
        "bytes=1048576",
        "duration_ms=",
        &format!("upstream={}", s.up),
    ] {
        assert!(line.contains(part), "{part} missing in {line}");
    }
    assert!(
        !logs.contains("secret123"),
        "query strings must not be logged"
    );

    let mut reg = prometheus_client::registry::Registry::default();
    proxy.metrics().register(&mut reg);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
    for want in [
        "proxy_requests_total{site=\"f.test\",status=\"200\"} 1",
        "proxy_requests_total{site=\"-\",status=\"404\"} 1",
        "proxy_response_bytes_total{site=\"f.test\"} 1048576",
        "proxy_request_duration_seconds_count{site=\"f.test\"} 1",
        "proxy_open_connections 1",
    ] {
        assert!(text.contains(want), "{want} missing in\n{text}");
    }
    proxy.shutdown().await;
}
