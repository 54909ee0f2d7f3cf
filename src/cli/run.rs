//! `run`: the daemon. Builds the plan, cleans up after a previous daemon that was killed,
//! starts the supervisor and the control socket, and maps signals: SIGTERM/SIGINT stop
//! everything (dependents first) and exit 0, SIGHUP reloads the file.

use super::Ctx;
use crate::control::{self, ControlCtx};
use crate::plan::{BuildOptions, Plan};
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
    rt.block_on(daemon(plan))
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("PROMETHEUS_STACK_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let tty = std::io::stderr().is_terminal();
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(tty);
    // journald stamps lines itself; a terminal gets times.
    let _ = if tty {
        b.try_init()
    } else {
        b.without_time().try_init()
    };
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
    if let Err(e) = reaper::become_subreaper() {
        tracing::warn!("cannot become a child subreaper ({e}); orphans of units go to init");
    }
    for line in leftovers::kill_recorded(&plan.stack.runtime_dir) {
        tracing::warn!("{line} (left by a daemon that did not stop cleanly)");
    }
    leftovers::init(&plan.stack.runtime_dir);
    if let Err(e) = podman::remove_leftovers(&plan).await {
        tracing::warn!("{e}");
    }
    let secrets = SecretStore::new(&plan.stack.data_dir);
    if let Err(e) = supervisor::ensure_secrets(&plan, &secrets) {
        anyhow::bail!("{e}");
    }

    // Signals are taken over before anything starts, so none is lost.
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;

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
    let background: Vec<tokio::task::JoinHandle<()>> = vec![notify::spawn(handle.clone())];

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
    server.close();
    tracing::info!("all units stopped");
    Ok(ExitCode::from(code))
}
