//! One client must not be able to fill the proxy (security issue point 10): a
//! per-address connection cap (trusted proxies exempt), a pool per listener, and idle
//! HTTP/2 and HTTP/1.1 keep-alive connections closed after their (here short) timeouts.

use crate::support::proxy::site::setup;
use crate::support::proxy::*;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus_stack::proxy::{AlwaysHealthy, UnitHealth};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

fn healthy() -> Arc<dyn UnitHealth> {
    Arc::new(AlwaysHealthy)
}

/// A TLS client trusting `ca_pem` whose connections come from `from` (any 127/8
/// address reaches the loopback listener on Linux).
struct FromClient(TlsClient);

impl FromClient {
    fn new(ca_pem: &str, alpn: &[&[u8]]) -> Self {
        FromClient(TlsClient::new(ca_pem, alpn))
    }

    async fn connect(
        &self,
        from: IpAddr,
        addr: SocketAddr,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let connect = self.0.connect_from(from, addr, "f.test");
        tokio::time::timeout(Duration::from_secs(5), connect)
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("handshake timed out")))
    }

    /// GET / over a new HTTP/1.1 connection from `from`.
    async fn get(&self, from: IpAddr, addr: SocketAddr) -> u16 {
        let tls = self.connect(from, addr).await.unwrap();
        let (mut send, conn) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        get1(&mut send, "f.test", "/").await.status
    }
}

/// Whether a new connection from `from` gets an answer to GET / (a refused connection
/// fails its handshake or is closed before it is served).
async fn served(client: &FromClient, from: IpAddr, addr: SocketAddr) -> bool {
    let Ok(mut tls) = client.connect(from, addr).await else {
        return false;
    };
    let _ = tls
        .write_all(b"GET / HTTP/1.1\r\nHost: f.test\r\nConnection: close\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut buf)).await;
    buf.starts_with(b"HTTP/1.1 200")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_is_capped_while_another_is_served() {
    let (s, toml) = setup(
        r#"{ path = "/", to = "UP" }"#,
        "max_conns_per_ip = 8\nhttp = \"127.0.0.1:0\"",
        "",
    )
    .await;
    let proxy = start(plan(&toml), healthy()).await;
    let addrs = proxy.local_addrs();
    let client = FromClient::new(&s.ca.pem, &[b"http/1.1"]);
    let a = ip("127.0.0.1");

    // The first 8 are served and held open; the next 8 are closed during the handshake.
    let mut held = Vec::new();
    for i in 0..8 {
        let c = client.connect(a, addrs.https).await;
        held.push(c.unwrap_or_else(|e| panic!("connection {i} under the cap refused: {e}")));
    }
    for i in 0..8 {
        assert!(
            !served(&client, a, addrs.https).await,
            "connection {} beyond the cap served",
            8 + i
        );
    }
    assert!(proxy.metrics().refused_per_ip_total() >= 8);

    // Another address is served; so is the capped one on the other listener.
    assert_eq!(client.get(ip("127.0.0.2"), addrs.https).await, 200);
    let http = addrs.http.unwrap();
    let mut plain = tcp_from(a, http).await.unwrap();
    plain
        .write_all(b"GET /x HTTP/1.1\r\nHost: f.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 30"), "{text}");

    // A closed connection gives its place back.
    held.pop();
    let mut ok = false;
    for _ in 0..50 {
        if served(&client, a, addrs.https).await {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the place of a closed connection was not given back");
    drop(held);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_http_listener_does_not_block_https() {
    let (s, toml) = setup(
        r#"{ path = "/", to = "UP" }"#,
        "max_connections = 4\nhttp = \"127.0.0.1:0\"",
        "",
    )
    .await;
    let proxy = start(plan(&toml), healthy()).await;
    let addrs = proxy.local_addrs();
    let http = addrs.http.unwrap();
    let client = FromClient::new(&s.ca.pem, &[b"http/1.1"]);

    // Four silent connections fill the redirect listener's pool (header timeout 10 s).
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(http).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fifth = tokio::spawn(async move {
        let mut c = TcpStream::connect(http).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: f.test\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        c.read(&mut buf).await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !fifth.is_finished(),
        "the HTTP listener served beyond max_connections"
    );

    // Two HTTPS connections (an accept loop takes its next place before it accepts, so
    // one could be served from a shared pool even when it is full).
    let first = client.connect(ip("127.0.0.1"), addrs.https);
    let first = tokio::time::timeout(Duration::from_secs(5), first)
        .await
        .expect("HTTPS blocked while the HTTP listener is full")
        .unwrap();
    let got = tokio::time::timeout(
        Duration::from_secs(5),
        client.get(ip("127.0.0.1"), addrs.https),
    )
    .await
    .expect("HTTPS blocked while the HTTP listener is full");
    assert_eq!(got, 200);
    drop((first, held));
    fifth.abort();
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_h2_connection_is_closed_after_the_timeout() {
    let (s, toml) = setup(
        r#"{ path = "/", to = "UP" }"#,
        "h2_idle_timeout = \"1s\"",
        "",
    )
    .await;
    let proxy = start(plan(&toml), healthy()).await;
    let addr = proxy.local_addrs().https;
    let client = FromClient::new(&s.ca.pem, &[b"h2"]);
    let tls = client.connect(ip("127.0.0.1"), addr).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) = hyper::client::conn::http2::handshake::<_, _, Full<Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);

    // A request longer than the timeout keeps the connection (it is not idle).
    let slow = get2(&mut send, "f.test", "/slow").await;
    assert_eq!(slow.status, 200);
    assert_eq!(slow.body, "slow answer");
    let idle_from = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(r.is_ok(), "idle h2 connection still open after 10 s");
    let idle = idle_from.elapsed();
    assert!(
        idle >= Duration::from_millis(800),
        "closed too early: {idle:?}"
    );
    assert!(idle < Duration::from_secs(5), "{idle:?}");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_timeout() {
    let (s, toml) = setup(
        r#"{ path = "/", to = "UP" }"#,
        "keepalive_timeout = \"1s\"\nheader_timeout = \"30s\"",
        "",
    )
    .await;
    let proxy = start(plan(&toml), healthy()).await;
    let addr = proxy.local_addrs().https;
    let client = FromClient::new(&s.ca.pem, &[b"http/1.1"]);
    let mut tls = client.connect(ip("127.0.0.1"), addr).await.unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nHost: f.test\r\n\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let mut buf = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    assert!(
        r.is_ok(),
        "idle keep-alive connection still open after 10 s: {text}"
    );
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("hello from f"), "{text}");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(800),
        "closed too early: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_is_not_capped() {
    let (s, toml) = setup(
        r#"{ path = "/", to = "UP" }"#,
        "max_conns_per_ip = 2\ntrusted_proxies = [\"127.0.0.3\"]",
        "",
    )
    .await;
    let proxy = start(plan(&toml), healthy()).await;
    let addr = proxy.local_addrs().https;
    let client = FromClient::new(&s.ca.pem, &[b"http/1.1"]);
    let lb = ip("127.0.0.3");
    let mut held = Vec::new();
    for i in 0..4 {
        let c = client.connect(lb, addr).await;
        held.push(c.unwrap_or_else(|e| panic!("load balancer connection {i} refused: {e}")));
    }
    assert!(served(&client, lb, addr).await, "the 5th was refused");
    assert_eq!(proxy.metrics().refused_per_ip_total(), 0);
    drop(held);
    proxy.shutdown().await;
}
