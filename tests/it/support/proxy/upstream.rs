//! Real upstream servers for the proxy tests: a small hyper HTTP/1.1 server with a few
//! behaviours chosen by path, and a WebSocket echo server.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Shared clock of the test process (SSE send times are ms on it).
pub fn clock() -> Instant {
    static T0: OnceLock<Instant> = OnceLock::new();
    *T0.get_or_init(Instant::now)
}

/// Milliseconds since [`clock`].
pub fn now_ms() -> u128 {
    clock().elapsed().as_millis()
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(s: impl Into<Bytes>) -> Body {
    Full::new(s.into()).boxed()
}

/// Starts an upstream named `name` on an ephemeral port.
///
/// - `/echo…`: the request line and headers as text (`PATH <path?query>`, `name: value`)
/// - `/sse`: 5 events, one every 200 ms, each `data: <send time in ms>`
/// - `/slow`: answers after 3 s
/// - `/upload`: reads the body, answers `got <n> bytes`
/// - `/big`: 1 MiB of `x`
/// - anything else: `hello from <name>`
pub async fn start(name: &'static str) -> SocketAddr {
    start_counted(name).await.0
}

/// [`start`], also counting the TCP connections it accepted.
pub async fn start_counted(name: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(name, req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, accepted)
}

async fn handle(name: &'static str, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let resp = if path.starts_with("/echo") {
        let mut s = format!(
            "PATH {}\nVERSION {:?}\n",
            req.uri().path_and_query().map(|p| p.as_str()).unwrap_or(""),
            req.version()
        );
        for (k, v) in req.headers() {
            s.push_str(&format!("{}: {}\n", k, v.to_str().unwrap_or("?")));
        }
        Response::new(full(s))
    } else if path == "/sse" {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(8);
        tokio::spawn(async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let ev = format!("data: {}\n\n", now_ms());
                if tx.send(Ok(Frame::data(Bytes::from(ev)))).await.is_err() {
                    return;
                }
            }
        });
        let stream = tokio_stream_from(rx);
        Response::builder()
            .header("content-type", "text/event-stream")
            .header("cache-control", "no-cache")
            .body(BodyExt::boxed(StreamBody::new(stream)))
            .unwrap()
    } else if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(3)).await;
        Response::new(full("slow answer"))
    } else if path.starts_with("/upload") {
        let n = match req.into_body().collect().await {
            Ok(b) => b.to_bytes().len(),
            Err(_) => return Ok(Response::new(full("body broke"))),
        };
        Response::new(full(format!("got {n} bytes")))
    } else if path == "/big" {
        Response::new(full(vec![b'x'; 1 << 20]))
    } else {
        Response::new(full(format!("hello from {name}")))
    };
    Ok(resp)
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A WebSocket server that echoes every message back.
pub async fn websocket_echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_close() {
                        break;
                    }
                    if msg.is_text() || msg.is_binary() {
                        let _ = ws.send(msg).await;
                    }
                }
            });
        }
    });
    addr
}
