//! `run`: the daemon. Builds the plan, cleans up after a previous daemon that was killed,
//! starts the supervisor and the control socket, and maps signals: SIGTERM/SIGINT stop
//! everything (dependents first) and exit 0, SIGHUP reloads the file.

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
use tokio::signal::unix::{signal, SignalKind};

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
    supervisor::logs::flush_stderr(std::time::Duration::from_secs(1));
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

async fn daemon(plan: Plan) -> anyhow::Result<ExitCode> {
    let plan = Arc::new(plan);
    for w in &plan.warnings {
        tracing::warn!("{w}");
    }
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
    })?;
    control::ensure_free(&plan.control.socket).await?;
    // One daemon per runtime dir: the leftover cleanup below must never hit a live daemon's units.
    let _lock = lock_runtime_dir(&plan.stack.runtime_dir)?;
    if let Err(e) = reaper::become_subreaper() {
        tracing::warn!("cannot become a child subreaper ({e}); orphans of units go to init");
    }
    for line in leftovers::kill_recorded(&plan.stack.runtime_dir) {
        tracing::warn!("{line} (left by a daemon that did not stop cleanly)");
    }
    leftovers::init(&plan.stack.runtime_dir);
    // Listing podman's containers costs tens of ms: native units need not wait for it.
    podman::remove_leftovers_in_background(plan.clone());
    let secrets = SecretStore::new(&plan.stack.data_dir);
    if let Err(e) = supervisor::ensure_secrets(&plan, &secrets) {
        anyhow::bail!("{e}");
    }

    // Signals are taken over before anything starts, so none is lost.
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;

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
    let metrics = crate::metrics::for_daemon(&handle, &gpu, plan.gpu.alert_used_percent);
    if let Some(m) = &plan.metrics {
        // A taken port must not take the stack down: say so and run without the listener.
        if let Err(e) = crate::metrics::serve(metrics.clone(), &m.listen).await {
            tracing::error!("{e}");
        }
    }

    let proxy = match &plan.proxy {
        Some(_) => match Proxy::start(plan.clone(), Arc::new(handle.clone())).await {
            Ok(p) => {
                metrics.add(Arc::new(p.metrics().clone()));
                Some(Arc::new(p))
            }
            Err(e) => {
                handle.shutdown().await;
                return Err(e.into());
            }
        },
        None => None,
    };

    let ctl = Arc::new(ControlCtx {
        handle: handle.clone(),
        gpu: Some(gpu.subscribe()),
        metrics: Some(metrics),
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

    // Background services that live as long as the daemon: the proxy, the GPU poller and
    // the metrics listener are started here by their pieces, each given `handle.clone()`.
    let mut background: Vec<tokio::task::JoinHandle<()>> = vec![notify::spawn(handle.clone())];
    if let Some(p) = &proxy {
        background.push(tokio::spawn(follow_reloads(handle.clone(), p.clone())));
    }

    let code = loop {
        tokio::select! {
            _ = sigterm.recv() => break 0,
            _ = sigint.recv() => break 0,
            _ = sighup.recv() => {
                notify::reloading(false);
                match supervisor::reload_from_source(&handle).await {
                    Ok(r) => tracing::info!(
                        "reload: restarted [{}], added [{}], removed [{}]{}",
                        r.restarted.join(", "), r.added.join(", "), r.removed.join(", "),
                        r.warnings.iter().map(|w| format!("; {w}")).collect::<String>()
                    ),
                    Err(e) => tracing::error!("reload failed: {e}"),
                }
                notify::reloading(true);
            }
        }
    };
    tracing::info!("stopping every unit");
    notify::stopping();
    handle.shutdown().await;
    for b in background {
        b.abort();
    }
    if let Some(p) = proxy.and_then(Arc::into_inner) {
        p.shutdown().await;
    }
    server.close();
    tracing::info!("all units stopped");
    Ok(ExitCode::from(code))
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
