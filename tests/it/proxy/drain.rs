//! The daemon's proxy on SIGTERM: new connections are refused at once, the request in
//! flight is still answered, and the daemon exits within the drain bound.

use crate::support::proxy::{get1, upstream, write, TestCa, TlsClient};
use crate::support::stack::{signal, wait_child, Stack};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The proxy's default drain bound (`ProxyOptions::shutdown_grace`).
const DRAIN_BOUND: Duration = Duration::from_secs(10);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls until connecting to `addr` is refused; false when it never is within `within`.
async fn refused_within(addr: SocketAddr, within: Duration) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        match tokio::net::TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return true,
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_the_request_in_flight_and_refuses_new_connections() {
    // The upstream's /slow answers after 3 s.
    let up = upstream::start("slow").await;
    let ca = TestCa::new("drain CA");
    let leaf = ca.ecdsa(&["f.test"]);
    let port = free_port();
    let mut s = Stack::new("");
    let cert = write(s.path(), "f.pem", &leaf.chain);
    let key = write(s.path(), "f.key", &leaf.key);
    s.write_config(&format!(
        "[proxy]\nhttps = \"127.0.0.1:{port}\"\n\n[[proxy.site]]\nhost = \"f.test\"\ncert = {cert:?}\nkey = {key:?}\nroutes = [{{ path = \"/\", to = \"{up}\" }}]\n"
    ));
    tokio::task::block_in_place(|| {
        s.start();
    });
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let client = TlsClient::new(&ca.pem, &[b"http/1.1"]);
    let mut h1 = client.h1(addr, "f.test").await;
    assert_eq!(get1(&mut h1, "f.test", "/").await.status, 200);

    let slow = tokio::spawn(async move { get1(&mut h1, "f.test", "/slow").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = Instant::now();
    signal(s.daemon_pid(), libc::SIGTERM);

    assert!(
        refused_within(addr, Duration::from_secs(2)).await,
        "new connections still accepted after SIGTERM:\n{}",
        s.stderr_text()
    );
    let answer = tokio::time::timeout(DRAIN_BOUND, slow)
        .await
        .expect("the request in flight was answered within the drain bound")
        .unwrap();
    assert_eq!(answer.status, 200, "{}", s.stderr_text());
    assert_eq!(answer.body, "slow answer");

    let mut daemon = s.daemon.take().unwrap();
    let status = tokio::task::block_in_place(|| wait_child(&mut daemon.child, DRAIN_BOUND))
        .unwrap_or_else(|| panic!("daemon still running:\n{}", s.stderr_text()));
    assert!(status.success(), "{status}\n{}", s.stderr_text());
    assert!(
        sent.elapsed() < DRAIN_BOUND,
        "exit took {:?}",
        sent.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_tunnels_hold_their_place_under_the_limit_and_close_on_shutdown() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let ws_up = upstream::websocket_echo().await;
    let (s, toml) = crate::support::proxy::site::setup(
        &format!(r#"{{ path = "/ws", to = "{ws_up}" }}, {{ path = "/", to = "UP" }}"#),
        "max_connections = 1",
        "",
    )
    .await;
    let proxy = crate::support::proxy::start(
        crate::support::proxy::plan(&toml),
        std::sync::Arc::new(prometheus_stack::proxy::AlwaysHealthy),
    )
    .await;
    let addr = proxy.local_addrs().https;
    let client = TlsClient::new(&s.ca.pem, &[b"http/1.1"]);
    let url = format!("wss://f.test:{}/ws", addr.port());
    let open_ws = || async {
        let tls = client.connect(addr, "f.test").await.unwrap();
        let (mut ws, resp) = tokio_tungstenite::client_async(url.clone(), tls)
            .await
            .unwrap();
        assert_eq!(resp.status(), 101);
        ws.send(Message::text("ping")).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("ping"));
        ws
    };

    // The tunnel outlives its HTTP connection but keeps the only permit.
    let mut ws = open_ws().await;
    let second = tokio::spawn({
        let client = client.clone();
        async move { client.connect(addr, "f.test").await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !second.is_finished(),
        "a connection beyond max_connections = 1 was served"
    );
    ws.close(None).await.unwrap();
    drop(ws);
    let tls = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .expect("the permit came back when the tunnel closed")
        .unwrap();
    drop(tls.unwrap());

    // Shutdown closes an open tunnel at once instead of waiting out the grace period (2 s).
    let mut ws = open_ws().await;
    let t = Instant::now();
    proxy.shutdown().await;
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    let end = tokio::time::timeout(Duration::from_secs(2), ws.next()).await;
    assert!(
        matches!(end, Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_))))),
        "{end:?}"
    );
}
