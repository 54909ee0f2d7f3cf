//! Accepting connections: a connection limit (semaphore), a TLS handshake deadline,
//! HTTP/1.1 or HTTP/2 by ALPN with abuse limits, and the
//! plain-HTTP redirect listener. Every loop and connection runs under the proxy's
//! [`Drain`]: on shutdown the loops return (the listening socket closes, so new
//! connections are refused) and open connections finish their requests.

use super::body::ResponseBody;
use super::drain::Drain;
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
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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

/// Drives a hyper connection until it ends or the proxy stops (then gracefully: the
/// request in flight is answered, keep-alive ends, HTTP/2 sends GOAWAY).
macro_rules! serve_until_stop {
    ($conn:expr, $drain:expr, $peer:expr) => {{
        let conn = $conn;
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => log_conn_end($peer, r),
            _ = $drain.stopped() => {
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

/// Accepts on `listener` (the `what` listener, for the log) until the drain starts,
/// handing one `limit` permit per connection to `serve`, which runs on a drained task.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    what: &str,
    limit: Arc<Semaphore>,
    drain: Drain,
    serve: F,
) where
    F: Fn(TcpStream, std::net::SocketAddr, OwnedSemaphorePermit) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = drain.stopped() => return,
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
            _ = drain.stopped() => return,
        };
        drain.spawn(serve(tcp, peer, permit));
    }
}

/// Serves HTTPS on `listener` until `stop`.
pub(crate) async fn serve_https(
    listener: TcpListener,
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    limit: Arc<Semaphore>,
) {
    let drain = shared.drain.clone();
    accept_loop(listener, "https", limit, drain, |tcp, peer, permit| {
        let shared = shared.clone();
        let acceptor = acceptor.clone();
        async move {
            let _open = shared.metrics.connection();
            serve_tls_conn(tcp, peer, shared, acceptor, Arc::new(permit)).await;
        }
    })
    .await
}

/// One HTTPS connection; `permit` (its place under the connection limit) is shared with
/// the WebSocket tunnels it opens, so it is given back when the last of them ends.
async fn serve_tls_conn(
    tcp: TcpStream,
    peer: std::net::SocketAddr,
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    permit: Arc<OwnedSemaphorePermit>,
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
        permit,
    });
    let drain = shared.drain.clone();
    // ALPN decides the protocol (no sniffing): h2 or HTTP/1.1 with upgrades.
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let svc = service_fn(move |req| service::handle(shared.clone(), info.clone(), req));
    let io = TokioIo::new(tls);
    if h2 {
        serve_until_stop!(http2_builder().serve_connection(io, svc), drain, peer);
    } else {
        serve_until_stop!(
            http1_builder(header_timeout)
                .serve_connection(io, svc)
                .with_upgrades(),
            drain,
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
) {
    let drain = shared.drain.clone();
    accept_loop(listener, "http", limit, drain, |tcp, peer, permit| {
        let shared = shared.clone();
        async move {
            let _permit = permit;
            let drain = shared.drain.clone();
            let header_timeout = shared.state.load().header_timeout;
            let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let state = shared.state.load();
                let resp = redirect::to_https(&req, &state.routes, https_port);
                async move { Ok::<hyper::Response<ResponseBody>, Infallible>(resp) }
            });
            let b = http1_builder(header_timeout);
            serve_until_stop!(b.serve_connection(TokioIo::new(tcp), svc), drain, peer);
        }
    })
    .await
}
