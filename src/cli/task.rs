//! `task run NAME` and `task wait NAME`: one plan task outside the daemon, as the
//! exported Kubernetes init containers run it, so provisioning code exists once.

use super::Ctx;
use crate::export::kubernetes::ServiceMap;
use crate::plan::{BuildOptions, Exec, Plan, TaskContext};
use anyhow::{bail, Context};
use clap::Subcommand;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `task …`
#[derive(Subcommand, Debug)]
pub enum TaskCmd {
    /// Run a oneshot's task (postgres-init, objects-init, logto-provision) to completion
    Run {
        name: String,
        /// Inside a pod: serve each other unit's loopback port (127.0.0.1:PORT) by
        /// forwarding it to the Service named after the unit, as exported manifests do
        #[arg(long)]
        forward_to_services: bool,
    },
    /// Wait until unit NAME's Service accepts connections on its main port
    Wait {
        name: String,
        /// Give up after this many seconds (0 = never)
        #[arg(long, default_value_t = 0)]
        timeout: u64,
    },
}

/// Runs `task ACTION`.
pub fn task(ctx: &Ctx, action: TaskCmd) -> anyhow::Result<ExitCode> {
    let plan = ctx
        .plan(BuildOptions { check_host: false })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match action {
        TaskCmd::Run {
            name,
            forward_to_services,
        } => {
            let services = ServiceMap::with_external(&plan, super::export::external_of(ctx)?);
            rt.block_on(run(plan, &name, forward_to_services.then_some(services)))
        }
        TaskCmd::Wait { name, timeout } => {
            let services = ServiceMap::with_external(&plan, super::export::external_of(ctx)?);
            rt.block_on(wait(&plan, &services, &name, timeout))
        }
    }
}

async fn run(plan: Plan, name: &str, forward: Option<ServiceMap>) -> anyhow::Result<ExitCode> {
    let Some(unit) = plan.unit(name) else {
        bail!(
            "no unit {name:?} in {} (`prometheus-stack check` lists them)",
            plan.source.name
        );
    };
    let Exec::Task(spec) = &unit.exec else {
        bail!(
            "unit {name:?} ({}) runs a program, not a task: start it with the daemon",
            unit.config_key
        );
    };
    let spec = spec.clone();
    if let Some(services) = forward {
        forward_ports(&services, name).await;
    }
    let store = crate::secrets::SecretStore::new(&plan.stack.data_dir);
    let unit_name = name.to_string();
    let tctx = TaskContext {
        unit: name.to_string(),
        plan: Arc::new(plan),
        secrets: store,
        log: Arc::new(move |line| eprintln!("{unit_name}: {line}")),
    };
    match spec.run(tctx).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("{name}: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Listens on 127.0.0.1:PORT for every other unit's port and forwards to `UNIT:PORT`,
/// so tasks written for one host reach the cluster's Services unchanged.
async fn forward_ports(services: &ServiceMap, own: &str) {
    for (port, unit) in services.ports() {
        if unit == own {
            continue;
        }
        // A port this task does not use may be privileged or taken: only say so.
        let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "not forwarding 127.0.0.1:{port} to {}: {e}",
                    services.target(unit, port)
                );
                continue;
            }
        };
        let target = services.target(unit, port);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                tokio::spawn(async move {
                    match tokio::net::TcpStream::connect(&target).await {
                        Ok(mut out) => {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                        }
                        Err(e) => eprintln!("forward to {target}: {e}"),
                    }
                });
            }
        });
    }
}

/// Polls `NAME:PORT` (or the unit's external server) until a TCP connection succeeds.
async fn wait(
    plan: &Plan,
    services: &ServiceMap,
    name: &str,
    timeout: u64,
) -> anyhow::Result<ExitCode> {
    let Some(port) = plan.unit(name).and_then(|u| u.port) else {
        bail!(
            "unit {name:?} has no port to wait for in {}",
            plan.source.name
        );
    };
    let target = services.target(name, port);
    let start = Instant::now();
    let mut last_note = start;
    loop {
        if tokio::net::TcpStream::connect(&target).await.is_ok() {
            eprintln!("{target} accepts connections");
            return Ok(ExitCode::SUCCESS);
        }
        if timeout > 0 && start.elapsed() >= Duration::from_secs(timeout) {
            eprintln!("{target} still refuses connections after {timeout}s");
            return Ok(ExitCode::from(1));
        }
        if last_note.elapsed() >= Duration::from_secs(10) {
            eprintln!("waiting for {target}");
            last_note = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
