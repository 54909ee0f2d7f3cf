//! The HTTPS front door (replaces nginx): TLS with per-site certificates (files or the
//! internal CA), routing by host then longest path prefix, forwarding to units over a
//! keep-alive pool, 503 status page while a unit is not healthy, HTTP→HTTPS redirect.
//!
//! Public API (what the daemon wires in):
//! - `async` [`Proxy::start`]`(Arc<Plan>, Arc<dyn UnitHealth>) -> Result<ProxyHandle,
//!   ProxyError>` binds `[proxy] https` (+ `http` for redirects); with
//!   `tls = "internal"` it first creates the CA and site leaves under `pki_dir`.
//!   [`Proxy::start_with`] also takes [`ProxyOptions`] (poll intervals, grace).
//! - `async` [`ProxyHandle::reload`]`(Arc<Plan>) -> Result<(), ProxyError>`: new routes,
//!   limits and certificates; open connections are kept (listen addresses are not
//!   rebound). Call it on SIGHUP / `reload`.
//! - `async` [`ProxyHandle::shutdown`]`(&self)`: stop accepting (the listening sockets
//!   close: new connections are refused), let requests in flight finish, bounded by
//!   the grace period; WebSocket tunnels close at once.
//! - [`ProxyHandle::connection_limit`]: the HTTPS listener's `[proxy] max_connections`
//!   semaphore, for other listeners that count against it (the metrics listener). The
//!   HTTP redirect listener has a pool of its own, so filling it does not block HTTPS;
//!   each pool also caps connections per client address (`max_conns_per_ip`).
//! - [`ProxyHandle::local_addrs`]: the bound addresses (useful with port 0).
//! - [`ProxyHandle::metrics`] → [`ProxyMetrics::register`] into a prometheus registry.
//! - [`UnitHealth`] (the supervisor's snapshot implements it), [`UnitView`],
//!   [`AlwaysHealthy`], [`SettableHealth`].
//! - [`serve_standalone`]: proxy only, all units healthy, until SIGINT/SIGTERM;
//!   SIGHUP re-reads certificates (benchmarks, tests).
//!
//! Access log lines go to tracing target [`ACCESS_TARGET`]. Certificates are re-read
//! when their files change on disk (polled; symlinks followed) and on reload; a broken
//! new certificate is refused with an error log and the previous one keeps serving.

mod access_log;
mod body;
mod certs;
mod drain;
mod error;
mod forward;
mod health;
mod idle;
mod listener;
mod metrics;
mod pages;
mod per_ip;
mod redirect;
mod routes;
mod service;
mod status_page;
mod supervised;
mod tls;
mod uploads;

pub use access_log::ACCESS_TARGET;
pub use error::ProxyError;
pub use health::{AlwaysHealthy, SettableHealth, UnitHealth, UnitView};
pub use metrics::ProxyMetrics;

use crate::config::model::TlsMode;
use crate::plan::{Plan, ProxyPlan};
use arc_swap::ArcSwap;
use certs::{CertSource, CertStore};
use drain::Drain;
use per_ip::Pool;
use service::{Shared, State};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Tunables that are not in the config file.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// How often certificate files are checked for changes.
    pub cert_poll: Duration,
    /// How often internal-CA leaves are checked for renewal.
    pub renew_check: Duration,
    /// The drain bound: how long shutdown waits for requests in flight before it closes
    /// what is still open.
    pub shutdown_grace: Duration,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            cert_poll: Duration::from_secs(5),
            renew_check: Duration::from_secs(3600),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Addresses the proxy listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyAddrs {
    pub https: SocketAddr,
    /// The redirect listener, when `[proxy] http` is set.
    pub http: Option<SocketAddr>,
}

/// Entry point.
pub struct Proxy;

impl Proxy {
    /// Binds the listeners of `plan.proxy` and starts serving.
    pub async fn start(
        plan: Arc<Plan>,
        health: Arc<dyn UnitHealth>,
    ) -> Result<ProxyHandle, ProxyError> {
        Self::start_with(plan, health, ProxyOptions::default()).await
    }

    /// [`Proxy::start`] with explicit options.
    pub async fn start_with(
        plan: Arc<Plan>,
        health: Arc<dyn UnitHealth>,
        opts: ProxyOptions,
    ) -> Result<ProxyHandle, ProxyError> {
        let p = plan.proxy.as_ref().ok_or(ProxyError::NoProxySection)?;
        let sources = cert_sources(p).await?;
        let certs = CertStore::new(&sources)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(certs.clone())?);
        let (https, http, addrs) = bind_all(p).await?;
        let shared = Arc::new(Shared {
            state: ArcSwap::from_pointee(State::new(p, None)),
            health,
            metrics: ProxyMetrics::default(),
            no_site: metrics::SiteName(Arc::from("-")),
            drain: Drain::default(),
        });
        let pool = || Pool::new(p.max_connections);
        let https_pool = pool();
        let limit = https_pool.limit.clone();
        let drain = shared.drain.clone();
        drain.spawn(listener::serve_https(
            https,
            shared.clone(),
            acceptor,
            https_pool,
        ));
        if let Some(l) = http {
            let port = addrs.https.port();
            drain.spawn(listener::serve_http_redirect(
                l,
                shared.clone(),
                port,
                pool(),
            ));
        }
        let plan_now = Arc::new(ArcSwap::from(plan.clone()));
        drain.spawn(watch_certs(
            certs.clone(),
            plan_now.clone(),
            opts.clone(),
            drain.clone(),
        ));
        tracing::info!(https = %addrs.https, http = ?addrs.http, sites = p.sites.len(), "proxy: listening");
        Ok(ProxyHandle {
            shared,
            certs,
            plan: plan_now,
            addrs,
            limit,
            opts,
        })
    }
}

/// Binds `[proxy] https` and, when set, `http`.
async fn bind_all(
    p: &ProxyPlan,
) -> Result<(TcpListener, Option<TcpListener>, ProxyAddrs), ProxyError> {
    let https = listener::bind(&p.https, "https").await?;
    let http = match &p.http {
        Some(a) => Some(listener::bind(a, "http").await?),
        None => None,
    };
    let addrs = ProxyAddrs {
        https: https.local_addr().map_err(|source| ProxyError::Bind {
            addr: p.https.clone(),
            key: "https",
            source,
        })?,
        http: http.as_ref().and_then(|l| l.local_addr().ok()),
    };
    Ok((https, http, addrs))
}

/// A running proxy.
pub struct ProxyHandle {
    shared: Arc<Shared>,
    certs: Arc<CertStore>,
    plan: Arc<ArcSwap<Plan>>,
    addrs: ProxyAddrs,
    limit: Arc<Semaphore>,
    opts: ProxyOptions,
}

impl ProxyHandle {
    /// The addresses actually bound.
    pub fn local_addrs(&self) -> ProxyAddrs {
        self.addrs
    }

    /// The HTTPS listener's `[proxy] max_connections` limit: one permit per open
    /// connection or tunnel.
    pub fn connection_limit(&self) -> Arc<Semaphore> {
        self.limit.clone()
    }

    /// The proxy's metrics (register them once into the daemon's registry).
    pub fn metrics(&self) -> &ProxyMetrics {
        &self.shared.metrics
    }

    /// Applies a new plan: routes, limits, timeouts and certificates (all re-read from
    /// disk; one that fails keeps its previous certificate, logged). Open connections
    /// stay. Changed listen addresses need a restart (logged). Errors: the plan has no
    /// `[proxy]` (stop the proxy instead) or the internal CA cannot issue (routes are
    /// applied anyway).
    pub async fn reload(&self, plan: Arc<Plan>) -> Result<(), ProxyError> {
        let p = plan.proxy.as_ref().ok_or(ProxyError::NoProxySection)?;
        if let Some(o) = &self.plan.load_full().proxy {
            if o.https != p.https || o.http != p.http || o.max_connections != p.max_connections {
                tracing::warn!("proxy: listen addresses or max_connections changed; they apply after a restart");
            }
        }
        let next = State::new(p, Some(&self.shared.state.load_full()));
        self.shared.state.store(Arc::new(next));
        self.plan.store(plan.clone());
        // Routes apply even when certificates cannot be issued; the old ones keep serving.
        let sources = cert_sources(p).await?;
        let certs = self.certs.clone();
        let _ = tokio::task::spawn_blocking(move || certs.replace(&sources)).await;
        tracing::info!(sites = p.sites.len(), "proxy: reloaded");
        Ok(())
    }

    /// Stops accepting (new connections are refused), lets requests in flight finish and
    /// waits up to the grace period, then closes what is still open. A second call
    /// returns at once.
    pub async fn shutdown(&self) {
        if !self.shared.drain.run(self.opts.shutdown_grace).await {
            tracing::warn!(
                "proxy: connections still open after the shutdown grace period ({:?}); closed them",
                self.opts.shutdown_grace
            );
        }
    }
}

/// Where each site's certificate lives; for `tls = "internal"` the leaves are issued
/// (or renewed) first.
async fn cert_sources(p: &ProxyPlan) -> Result<Vec<CertSource>, ProxyError> {
    match p.tls {
        TlsMode::Files => p
            .sites
            .iter()
            .map(|s| match (&s.cert, &s.key) {
                (Some(c), Some(k)) => Ok(CertSource {
                    host: s.host.clone(),
                    cert: c.clone(),
                    key: k.clone(),
                }),
                _ => Err(ProxyError::MissingCertPaths {
                    host: s.host.clone(),
                }),
            })
            .collect(),
        TlsMode::Internal => {
            let dir = p.pki_dir.clone();
            let hosts: Vec<String> = p.sites.iter().map(|s| s.host.clone()).collect();
            let issued = tokio::task::spawn_blocking(move || {
                crate::pki::ensure_site_certs(&dir, &hosts, &crate::pki::LeafPolicy::default())
            })
            .await
            .map_err(|e| ProxyError::Tls(format!("certificate issuing task failed: {e}")))??;
            Ok(issued
                .into_iter()
                .map(|l| CertSource {
                    host: l.host,
                    cert: l.cert,
                    key: l.key,
                })
                .collect())
        }
    }
}

/// Polls certificate files; for the internal CA also renews leaves before expiry.
async fn watch_certs(
    certs: Arc<CertStore>,
    plan: Arc<ArcSwap<Plan>>,
    opts: ProxyOptions,
    drain: Drain,
) {
    let mut poll = tokio::time::interval(opts.cert_poll);
    let mut renew = tokio::time::interval(opts.renew_check);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    renew.tick().await;
    loop {
        tokio::select! {
            _ = poll.tick() => {
                let c = certs.clone();
                let _ = tokio::task::spawn_blocking(move || c.poll()).await;
            }
            _ = renew.tick() => {
                let plan = plan.load_full();
                if let Some(p) = plan.proxy.as_ref().filter(|p| p.tls == TlsMode::Internal) {
                    // Renewal rewrites the leaf files; the next poll picks them up.
                    if let Err(e) = cert_sources(p).await {
                        tracing::error!("proxy: internal CA renewal failed: {e}");
                    }
                }
            }
            _ = drain.stopped() => return,
        }
    }
}

/// Runs the proxy alone (every unit counted healthy) until SIGINT or SIGTERM; SIGHUP
/// reloads `plan` (certificates re-read). For benchmarks and manual tests.
pub async fn serve_standalone(plan: Arc<Plan>) -> Result<(), ProxyError> {
    use tokio::signal::unix::{signal, SignalKind};
    let handle = Proxy::start(plan.clone(), Arc::new(AlwaysHealthy)).await?;
    let sig = |k, name| signal(k).map_err(|e| ProxyError::Signal(name, e));
    let mut term = sig(SignalKind::terminate(), "SIGTERM")?;
    let mut int = sig(SignalKind::interrupt(), "SIGINT")?;
    let mut hup = sig(SignalKind::hangup(), "SIGHUP")?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                if let Err(e) = handle.reload(plan.clone()).await {
                    tracing::error!("proxy: reload failed: {e}");
                }
            }
        }
    }
    handle.shutdown().await;
    Ok(())
}
