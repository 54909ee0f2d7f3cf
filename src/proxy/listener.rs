//! Accepting connections: a connection pool per listener (a semaphore and a per-client
//! cap), a TLS handshake deadline, HTTP/1.1 or HTTP/2 by ALPN with abuse limits and
//! idle timeouts, and the plain-HTTP redirect listener. Every loop and connection runs
//! under the proxy's [`Drain`](super::drain::Drain): on shutdown the loops return (the
//! listening socket closes, so new connections are refused) and open connections finish
//! their requests.

use super::body::ResponseBody;
use super::error::ProxyError;
use super::idle::{Idle, Tracked};
use super::per_ip::{ConnPermit, Pool};
use super::redirect;
use super::service::{self, ConnInfo, Shared};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// HTTP/2 streams one client may have open at once: a chat UI's page opens a few
/// dozen at most; nginx's default is 128 too.
const H2_MAX_STREAMS: u32 = 128;
/// HTTP/2 per-stream receive window: what one upload may have buffered here before the
/// upstream takes it (hyper's default is 1 MiB); 256 KiB still fills a LAN link.
const H2_STREAM_WINDOW: u32 = 256 * 1024;
/// HTTP/2 response bytes buffered per stream while the client's window is shut
/// (hyper's default is 400 KiB): SSE tokens and JSON are small, downloads are paced.
const H2_MAX_SEND_BUF: usize = 128 * 1024;
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

/// Drives a hyper connection until it ends, the proxy stops or no request has been
/// open for `$idle_for` (then gracefully: the request in flight is answered,
/// keep-alive ends, HTTP/2 sends GOAWAY).
macro_rules! serve_until_stop {
    ($conn:expr, $drain:expr, $peer:expr, $idle:expr, $idle_for:expr) => {{
        let conn = $conn;
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => log_conn_end($peer, r),
            _ = $drain.stopped() => {
                conn.as_mut().graceful_shutdown();
                log_conn_end($peer, conn.await);
            }
            _ = $idle.expired($idle_for) => {
                tracing::debug!(peer = %$peer, "proxy: closing an idle connection");
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
        // hyper's read buffer grows to 400 KiB on uploads and keeps that size while the
        // connection idles: the largest header block is all a request needs to buffer.
        .max_buf_size(MAX_HEADER_BYTES as usize)
        .keep_alive(true);
    b
}

fn http2_builder() -> http2::Builder<TokioExecutor> {
    let mut b = http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS)
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .max_send_buf_size(H2_MAX_SEND_BUF)
        .max_header_list_size(MAX_HEADER_BYTES)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
        .max_local_error_reset_streams(H2_MAX_LOCAL_RESETS)
        .keep_alive_interval(Duration::from_secs(60))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

/// Accepts on `listener` (the `what` listener, for the log) until the drain starts,
/// handing each connection its places in `pool` and running `serve` on a drained task.
/// A client already at its per-address cap is disconnected at once.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    what: &str,
    pool: Pool,
    shared: Arc<Shared>,
    serve: F,
) where
    F: Fn(TcpStream, std::net::SocketAddr, ConnPermit) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let drain = shared.drain.clone();
    loop {
        let permit = tokio::select! {
            p = pool.limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
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
        let Some(ip) = pool
            .per_ip
            .try_acquire(peer.ip(), per_ip_cap(&shared, peer.ip()))
        else {
            shared.metrics.refused_per_ip();
            tracing::debug!(%peer, "proxy: {what} connection refused: max_conns_per_ip reached");
            continue;
        };
        drain.spawn(serve(tcp, peer, ConnPermit::new(permit, ip)));
    }
}

/// `[proxy] max_conns_per_ip` for `ip`; none for a trusted proxy (a load balancer
/// carries many clients on its few addresses).
fn per_ip_cap(shared: &Shared, ip: std::net::IpAddr) -> usize {
    let state = shared.state.load();
    if state.trusted_proxies.iter().any(|c| c.contains(ip)) {
        usize::MAX
    } else {
        state.max_conns_per_ip
    }
}

/// Wraps `handle`'s responses so the connection counts the request as open until its
/// response body is dropped.
fn tracked<B, Fut>(
    idle: &Arc<Idle>,
    handle: Fut,
) -> impl std::future::Future<Output = Result<hyper::Response<Tracked<B>>, Infallible>>
where
    Fut: std::future::Future<Output = Result<hyper::Response<B>, Infallible>>,
{
    let busy = idle.busy();
    async move { Ok(handle.await?.map(|b| Tracked::new(b, busy))) }
}

/// Serves HTTPS on `listener` until `stop`.
pub(crate) async fn serve_https(
    listener: TcpListener,
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    pool: Pool,
) {
    accept_loop(
        listener,
        "https",
        pool,
        shared.clone(),
        |tcp, peer, permit| {
            let shared = shared.clone();
            let acceptor = acceptor.clone();
            async move {
                let _open = shared.metrics.connection();
                serve_tls_conn(tcp, peer, shared, acceptor, Arc::new(permit)).await;
            }
        },
    )
    .await
}

/// One HTTPS connection; `permit` (its places in the pool) is shared with the WebSocket
/// tunnels it opens, so it is given back when the last of them ends.
async fn serve_tls_conn(
    tcp: TcpStream,
    peer: std::net::SocketAddr,
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    permit: Arc<ConnPermit>,
) {
    let _ = tcp.set_nodelay(true);
    let header_timeout = shared.state.load().header_timeout;
    // Boxed, and so freed once done: otherwise every idle connection's task keeps room
    // for the handshake's state (its size is the largest of its await points).
    let Some(tls) = Box::pin(handshake(tcp, peer, &shared, acceptor, header_timeout)).await else {
        return;
    };
    let info = Arc::new(ConnInfo {
        peer,
        sni: tls.get_ref().1.server_name().map(str::to_ascii_lowercase),
        permit,
    });
    // ALPN decides the protocol (no sniffing): h2 or HTTP/1.1 with upgrades. Each is
    // boxed so a connection holds only its own protocol's state, not room for the other.
    if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
        Box::pin(serve_h2(TokioIo::new(tls), peer, shared, info)).await;
    } else {
        Box::pin(serve_h1(
            TokioIo::new(tls),
            peer,
            shared,
            info,
            header_timeout,
        ))
        .await;
    }
}

type Tls = tokio_rustls::server::TlsStream<TcpStream>;

/// The TLS handshake, within `[proxy] header_timeout`; `None` (counted and logged) if
/// it failed.
async fn handshake(
    tcp: TcpStream,
    peer: std::net::SocketAddr,
    shared: &Shared,
    acceptor: TlsAcceptor,
    header_timeout: Duration,
) -> Option<Tls> {
    match tokio::time::timeout(header_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            shared.metrics.handshake_failed();
            tracing::debug!(%peer, "proxy: TLS handshake failed: {e}");
            None
        }
        Err(_) => {
            shared.metrics.handshake_failed();
            tracing::debug!(%peer, "proxy: TLS handshake timed out");
            None
        }
    }
}

/// HTTP/2 on an established TLS connection, until it ends, the proxy stops or it idles.
async fn serve_h2(
    io: TokioIo<Tls>,
    peer: std::net::SocketAddr,
    shared: Arc<Shared>,
    info: Arc<ConnInfo>,
) {
    let (drain, h2_idle) = (shared.drain.clone(), shared.state.load().h2_idle_timeout);
    let idle = Idle::new();
    let open = idle.clone();
    let svc =
        service_fn(move |req| tracked(&open, service::handle(shared.clone(), info.clone(), req)));
    let conn = http2_builder().serve_connection(io, svc);
    serve_until_stop!(conn, drain, peer, idle, h2_idle);
}

/// HTTP/1.1 (with upgrades) on an established TLS connection, until it ends, the
/// proxy stops or it idles.
async fn serve_h1(
    io: TokioIo<Tls>,
    peer: std::net::SocketAddr,
    shared: Arc<Shared>,
    info: Arc<ConnInfo>,
    header_timeout: Duration,
) {
    let (drain, h1_idle) = (shared.drain.clone(), shared.state.load().keepalive_timeout);
    let idle = Idle::new();
    let open = idle.clone();
    let svc =
        service_fn(move |req| tracked(&open, service::handle(shared.clone(), info.clone(), req)));
    let conn = http1_builder(header_timeout)
        .serve_connection(io, svc)
        .with_upgrades();
    serve_until_stop!(conn, drain, peer, idle, h1_idle);
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
    pool: Pool,
) {
    accept_loop(
        listener,
        "http",
        pool,
        shared.clone(),
        |tcp, peer, permit| {
            let shared = shared.clone();
            async move {
                let _permit = permit;
                let drain = shared.drain.clone();
                let (header_timeout, h1_idle) = {
                    let s = shared.state.load();
                    (s.header_timeout, s.keepalive_timeout)
                };
                let idle = Idle::new();
                let open = idle.clone();
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let state = shared.state.load();
                    let resp = redirect::to_https(&req, &state.routes, https_port);
                    tracked(&open, async move {
                        Ok::<hyper::Response<ResponseBody>, Infallible>(resp)
                    })
                });
                let conn = http1_builder(header_timeout).serve_connection(TokioIo::new(tcp), svc);
                serve_until_stop!(conn, drain, peer, idle, h1_idle);
            }
        },
    )
    .await
}
