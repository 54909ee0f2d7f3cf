//! `run`: the daemon. Builds the plan, cleans up after a previous daemon that was killed,
//! starts the supervisor and the control socket, and maps signals: SIGTERM/SIGINT stop
//! everything and exit 0, SIGHUP reloads the file.
//!
//! Shutdown (the mini-redis pattern, with `tokio_util`): one [`CancellationToken`] stops
//! the background services (the reload worker, the metrics listener, the proxy's plan
//! follower) and a [`TaskTracker`] counts them. The order is: the proxy drains (new
//! connections refused, requests in flight answered, bounded by its grace period) while
//! the units still run, then the units stop (dependents first), then the background
//! tasks are awaited (bounded). A reload in progress is abandoned, so SIGTERM never
//! waits for it: shutdown stops every unit of whichever plan is in force.

use super::Ctx;
use crate::config::model::TlsMode;
use crate::control::{self, ControlCtx};
use crate::plan::{BuildOptions, Plan};
use crate::proxy::{Proxy, ProxyHandle};
use crate::runtime::{leftovers, podman, reaper};
use crate::secrets::SecretStore;
use crate::supervisor::{self, Supervisor};
use crate::systemd::notify;
use anyhow::Context;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long shutdown waits for the background services after the units stopped.
const BACKGROUND_GRACE: Duration = Duration::from_secs(2);
/// How long the runtime waits for blocking work left behind (an abandoned reload's
/// plan build, a start-time podman cleanup) before the process exits; dropping the
/// runtime would wait for it without bound.
const BLOCKING_GRACE: Duration = Duration::from_secs(5);

/// Runs the daemon in the foreground until SIGTERM/SIGINT.
pub fn run(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    init_tracing();
    let plan = match ctx.plan(BuildOptions::default()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let r = rt.block_on(daemon(plan));
    rt.shutdown_timeout(BLOCKING_GRACE);
    supervisor::logs::flush_stderr(Duration::from_secs(1));
    r
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("PROMETHEUS_STACK_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let tty = std::io::stderr().is_terminal();
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(supervisor::logs::StderrQueue)
        .with_target(false)
        .with_ansi(tty);
    // journald stamps lines itself; a terminal gets times.
    let _ = if tty {
        b.try_init()
    } else {
        b.without_time().try_init()
    };
}

/// Holds an exclusive lock on `RUNTIME_DIR/daemon.lock` for the daemon's lifetime.
fn lock_runtime_dir(dir: &std::path::Path) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    let path = dir.join("daemon.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
        anyhow::anyhow!(
            "another daemon runs with the runtime dir {} (it holds {}); stop it first",
            dir.display(),
            path.display()
        )
    })
}

/// The daemon's signals, taken over before anything starts so none is lost.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    fn take() -> std::io::Result<Self> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

/// Services that live as long as the daemon, stopped by `stop`, counted by `tracker`.
#[derive(Clone, Default)]
struct Background {
    stop: CancellationToken,
    tracker: TaskTracker,
}

async fn daemon(plan: Plan) -> anyhow::Result<ExitCode> {
    let plan = Arc::new(plan);
    for w in &plan.warnings {
        tracing::warn!("{w}");
    }
    prepare_dirs(&plan)?;
    control::ensure_free(&plan.control.socket).await?;
    // One daemon per runtime dir: the leftover cleanup below must never hit a live daemon's units.
    let _lock = lock_runtime_dir(&plan.stack.runtime_dir)?;
    clean_up_after_previous(&plan);
    let secrets = SecretStore::new(&plan.stack.data_dir);
    // A first start generates RSA keys (CPU seconds): off the async workers.
    let (p, s) = (plan.clone(), secrets.clone());
    match tokio::task::spawn_blocking(move || supervisor::ensure_secrets(&p, &s)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => anyhow::bail!("{e}"),
        Err(e) => anyhow::bail!("generating the secrets failed: {e}"),
    }
    let mut signals = Signals::take()?;
    // Units that call our HTTPS trust the internal CA (NODE_EXTRA_CA_CERTS): it must
    // exist before any of them starts.
    if let Some(p) = plan.proxy.as_ref().filter(|p| p.tls == TlsMode::Internal) {
        let hosts: Vec<String> = p.sites.iter().map(|s| s.host.clone()).collect();
        crate::pki::ensure_stack_ca(&p.pki_dir, plan.stack.domain.as_deref(), &hosts)
            .with_context(|| format!("creating the internal CA in {}", p.pki_dir.display()))?;
    }

    // Start gates other pieces provide (e.g. the GPU poller's free-memory gate) go here.
    let gpu = crate::gpu::GpuMonitor::start(&plan);
    let gates: Vec<Arc<dyn supervisor::StartGate>> = vec![gpu.gate()];
    let handle = Supervisor::start(plan.clone(), secrets, gates);
    gpu.connect_supervisor(&handle);
    let bg = Background::default();
    let usage = crate::usage::UsageMonitor::start(handle.clone(), bg.stop.clone(), &bg.tracker);
    let metrics = crate::metrics::for_daemon(&handle, &gpu, plan.gpu.alert_used_percent);
    metrics.add(Arc::new(crate::metrics::UsageMetrics(usage.clone())));
    let proxy = match start_proxy(&plan, &handle, &metrics, &bg).await {
        Ok(p) => p,
        Err(e) => {
            handle.shutdown().await;
            return Err(e);
        }
    };
    let backups = crate::backup::scheduled::start(&plan, bg.stop.clone(), &bg.tracker);
    metrics.add(Arc::new(crate::backup::scheduled::BackupMetrics(
        backups.clone(),
    )));
    serve_metrics(&plan, &metrics, proxy.as_deref(), &bg).await;

    let ctl = Arc::new(ControlCtx {
        handle: handle.clone(),
        gpu: Some(gpu.subscribe()),
        metrics: Some(metrics),
        usage: Some(usage),
        backup: Some(backups),
    });
    let server =
        match control::serve(&plan.control.socket, plan.control.group.as_deref(), ctl).await {
            Ok(s) => s,
            Err(e) => {
                handle.shutdown().await;
                return Err(e.into());
            }
        };
    tracing::info!(
        "{} units from {}; control socket {}",
        plan.units.len(),
        plan.source.name,
        server.path().display()
    );
    let notifier = notify::spawn(handle.clone());
    let code = handle_signals(&mut signals, &handle, &bg).await;
    stop_all(&handle, proxy.as_deref(), &bg).await;
    notifier.abort();
    server.close();
    tracing::info!("all units stopped");
    Ok(ExitCode::from(code))
}

/// Creates the data and runtime dirs.
fn prepare_dirs(plan: &Plan) -> anyhow::Result<()> {
    std::fs::create_dir_all(&plan.stack.data_dir).with_context(|| {
        format!(
            "creating the data dir {} (stack.data_dir)",
            plan.stack.data_dir.display()
        )
    })?;
    std::fs::create_dir_all(&plan.stack.runtime_dir).with_context(|| {
        format!(
            "creating the runtime dir {} (stack.runtime_dir)",
            plan.stack.runtime_dir.display()
        )
    })
}

/// Becomes the units' subreaper and kills what a daemon that did not stop cleanly left.
fn clean_up_after_previous(plan: &Arc<Plan>) {
    if let Err(e) = reaper::become_subreaper() {
        tracing::warn!("cannot become a child subreaper ({e}); orphans of units go to init");
    }
    for line in leftovers::kill_recorded(&plan.stack.runtime_dir) {
        tracing::warn!("{line} (left by a daemon that did not stop cleanly)");
    }
    leftovers::init(&plan.stack.runtime_dir);
    // Listing podman's containers costs tens of ms: native units need not wait for it.
    podman::remove_leftovers_in_background(plan.clone());
}

/// Starts the proxy when the plan has one, its metrics added and its reloads followed.
async fn start_proxy(
    plan: &Arc<Plan>,
    handle: &supervisor::Handle,
    metrics: &crate::metrics::Metrics,
    bg: &Background,
) -> anyhow::Result<Option<Arc<ProxyHandle>>> {
    if plan.proxy.is_none() {
        return Ok(None);
    }
    let p = Arc::new(Proxy::start(plan.clone(), Arc::new(handle.clone())).await?);
    metrics.add(Arc::new(p.metrics().clone()));
    let follow = follow_reloads(handle.clone(), p.clone());
    let stop = bg.stop.clone();
    bg.tracker.spawn(async move {
        tokio::select! {
            _ = follow => {}
            _ = stop.cancelled() => {}
        }
    });
    Ok(Some(p))
}

/// Starts the `[metrics].listen` listener, counted against the proxy's connection limit.
/// A taken port must not take the stack down: it says so and runs without the listener.
async fn serve_metrics(
    plan: &Plan,
    metrics: &crate::metrics::Metrics,
    proxy: Option<&ProxyHandle>,
    bg: &Background,
) {
    let Some(m) = &plan.metrics else { return };
    let mut guard = crate::metrics::ServeGuard {
        stop: bg.stop.clone(),
        tracker: bg.tracker.clone(),
        ..Default::default()
    };
    if let Some(p) = proxy {
        guard.limit = p.connection_limit();
    }
    if let Err(e) = crate::metrics::serve_with(metrics.clone(), &m.listen, guard).await {
        tracing::error!("{e}");
    }
}

/// Waits for SIGTERM/SIGINT (returns the exit code); SIGHUP wakes the reload worker,
/// which runs beside this loop so a stop signal is seen at once.
async fn handle_signals(sig: &mut Signals, handle: &supervisor::Handle, bg: &Background) -> u8 {
    let wake = Arc::new(Notify::new());
    bg.tracker
        .spawn(reload_worker(handle.clone(), wake.clone(), bg.stop.clone()));
    loop {
        tokio::select! {
            _ = sig.term.recv() => return 0,
            _ = sig.int.recv() => return 0,
            // Several SIGHUPs during one reload leave one permit: one more reload.
            _ = sig.hup.recv() => wake.notify_one(),
        }
    }
}

/// Runs one reload per wake-up until `stop`; a reload in progress when `stop` comes is
/// dropped (shutdown stops every unit anyway).
async fn reload_worker(handle: supervisor::Handle, wake: Arc<Notify>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = wake.notified() => {}
            _ = stop.cancelled() => return,
        }
        tokio::select! {
            _ = reload_once(&handle) => {}
            _ = stop.cancelled() => {
                tracing::warn!("reload abandoned: the daemon is stopping");
                return;
            }
        }
    }
}

async fn reload_once(handle: &supervisor::Handle) {
    notify::reloading(false);
    match supervisor::reload_from_source(handle).await {
        Ok(r) => tracing::info!(
            "reload: restarted [{}], added [{}], removed [{}]{}",
            r.restarted.join(", "),
            r.added.join(", "),
            r.removed.join(", "),
            r.warnings
                .iter()
                .map(|w| format!("; {w}"))
                .collect::<String>()
        ),
        Err(e) => tracing::error!("reload failed: {e}"),
    }
    notify::reloading(true);
}

/// The shutdown order: background stop signal, proxy drain, units, background tasks.
async fn stop_all(handle: &supervisor::Handle, proxy: Option<&ProxyHandle>, bg: &Background) {
    tracing::info!("stopping every unit");
    notify::stopping();
    bg.stop.cancel();
    bg.tracker.close();
    // The units still serve the requests in flight while the proxy drains.
    if let Some(p) = proxy {
        p.shutdown().await;
    }
    handle.shutdown().await;
    if tokio::time::timeout(BACKGROUND_GRACE, bg.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("background tasks still running after {BACKGROUND_GRACE:?}; leaving them");
    }
}

/// Gives every plan put in force (SIGHUP or `reload`) to the proxy: new routes and
/// certificates; a refused certificate keeps the old one serving.
async fn follow_reloads(handle: supervisor::Handle, proxy: Arc<ProxyHandle>) {
    let mut plans = handle.watch_plan();
    plans.mark_unchanged();
    while plans.changed().await.is_ok() {
        let plan = plans.borrow_and_update().clone();
        if let Err(e) = proxy.reload(plan).await {
            tracing::error!("proxy reload: {e}");
        }
    }
}
