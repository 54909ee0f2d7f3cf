//! Accepting connections: a connection limit (semaphore), a TLS handshake deadline,
//! HTTP/1.1 or HTTP/2 by ALPN with abuse limits, and the
//! plain-HTTP redirect listener.

use super::body::ResponseBody;
use super::error::ProxyError;
use super::redirect;
use super::service::{self, ConnInfo, Shared};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

/// HTTP/2 streams one client may have open at once.
const H2_MAX_STREAMS: u32 = 250;
/// Largest request header block (both protocols); larger gets 431 / a stream error.
const MAX_HEADER_BYTES: u32 = 64 * 1024;
/// Client resets of not-yet-answered streams before the connection is closed
/// (the HTTP/2 "rapid reset" flood).
const H2_MAX_PENDING_RESETS: usize = 50;
/// Stream errors we may cause before the connection is closed.
const H2_MAX_LOCAL_RESETS: usize = 1024;

/// Binds `addr` ([proxy] `key`), naming both in the error.
pub(crate) async fn bind(addr: &str, key: &'static str) -> Result<TcpListener, ProxyError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ProxyError::Bind {
            addr: addr.to_string(),
            key,
            source,
        })
}

/// What stops accept loops and asks open connections to finish.
#[derive(Clone)]
pub(crate) struct Stop(pub watch::Receiver<bool>);

impl Stop {
    /// Resolves once the proxy is stopping.
    pub(crate) async fn wait(&mut self) {
        let _ = self.0.wait_for(|s| *s).await;
    }
}

/// Drives a hyper connection until it ends or the proxy stops (then gracefully).
macro_rules! serve_until_stop {
    ($conn:expr, $stop:expr, $peer:expr) => {{
        let conn = $conn;
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => log_conn_end($peer, r),
            _ = $stop.wait() => {
                conn.as_mut().graceful_shutdown();
                log_conn_end($peer, conn.await);
            }
        }
    }};
}

fn http1_builder(header_timeout: Duration) -> http1::Builder {
    let mut b = http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_header_size(MAX_HEADER_BYTES as usize)
        .keep_alive(true);
    b
}

fn http2_builder() -> http2::Builder<TokioExecutor> {
    let mut b = http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_header_list_size(MAX_HEADER_BYTES)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
        .max_local_error_reset_streams(H2_MAX_LOCAL_RESETS)
        .keep_alive_interval(Duration::from_secs(60))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

/// Accepts on `listener` (the `what` listener, for the log) until `stop`, holding one
/// `limit` permit per connection while `serve` handles it on its own task.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    what: &str,
    limit: Arc<Semaphore>,
    mut stop: Stop,
    serve: F,
) where
    F: Fn(TcpStream, std::net::SocketAddr, Stop) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = stop.wait() => return,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("proxy: accept failed on the {what} listener: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.wait() => return,
        };
        let conn = serve(tcp, peer, stop.clone());
        tokio::spawn(async move {
            let _permit = permit;
            conn.await;
        });
    }
}

/// Serves HTTPS on `listener` until `stop`.
pub(crate) async fn serve_https(
    listener: TcpListener,
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    limit: Arc<Semaphore>,
    stop: Stop,
) {
    accept_loop(listener, "https", limit, stop, |tcp, peer, stop| {
        let shared = shared.clone();
        let acceptor = acceptor.clone();
        async move {
            let _open = shared.metrics.connection();
            serve_tls_conn(tcp, peer, shared, acceptor, stop).await;
        }
    })
    .await
}

async fn serve_tls_conn(
    tcp: TcpStream,
    peer: std::net::SocketAddr,
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    mut stop: Stop,
) {
    let _ = tcp.set_nodelay(true);
    let header_timeout = shared.state.load().header_timeout;
    let tls = match tokio::time::timeout(header_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            shared.metrics.handshake_failed();
            tracing::debug!(%peer, "proxy: TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            shared.metrics.handshake_failed();
            tracing::debug!(%peer, "proxy: TLS handshake timed out");
            return;
        }
    };
    let info = Arc::new(ConnInfo {
        peer,
        sni: tls.get_ref().1.server_name().map(str::to_ascii_lowercase),
    });
    // ALPN decides the protocol (no sniffing): h2 or HTTP/1.1 with upgrades.
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let svc = service_fn(move |req| service::handle(shared.clone(), info.clone(), req));
    let io = TokioIo::new(tls);
    if h2 {
        serve_until_stop!(http2_builder().serve_connection(io, svc), stop, peer);
    } else {
        serve_until_stop!(
            http1_builder(header_timeout)
                .serve_connection(io, svc)
                .with_upgrades(),
            stop,
            peer
        );
    }
}

fn log_conn_end(peer: std::net::SocketAddr, r: Result<(), hyper::Error>) {
    if let Err(e) = r {
        tracing::debug!(%peer, "proxy: connection ended: {e}");
    }
}

/// Serves the plain-HTTP redirect listener until `stop`.
pub(crate) async fn serve_http_redirect(
    listener: TcpListener,
    shared: Arc<Shared>,
    https_port: u16,
    limit: Arc<Semaphore>,
    stop: Stop,
) {
    accept_loop(listener, "http", limit, stop, |tcp, peer, mut stop| {
        let shared = shared.clone();
        async move {
            let header_timeout = shared.state.load().header_timeout;
            let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let state = shared.state.load();
                let resp = redirect::to_https(&req, &state.routes, https_port);
                async move { Ok::<hyper::Response<ResponseBody>, Infallible>(resp) }
            });
            let b = http1_builder(header_timeout);
            serve_until_stop!(b.serve_connection(TokioIo::new(tcp), svc), stop, peer);
        }
    })
    .await
}
