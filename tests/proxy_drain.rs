//! The daemon's proxy on SIGTERM: new connections are refused at once, the request in
//! flight is still answered, and the daemon exits within the drain bound.

mod common;
mod common_core;
mod common_proxy;

use common_core::{signal, wait_child, Stack};
use common_proxy::{get1, upstream, write, TestCa, TlsClient};
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
    let status = tokio::task::block_in_place(|| wait_child(&mut daemon, DRAIN_BOUND))
        .unwrap_or_else(|| panic!("daemon still running:\n{}", s.stderr_text()));
    assert!(status.success(), "{status}\n{}", s.stderr_text());
    assert!(
        sent.elapsed() < DRAIN_BOUND,
        "exit took {:?}",
        sent.elapsed()
    );
}
