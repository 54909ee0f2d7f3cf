//! Oneshots and dependencies as init containers, in the plan's start order.
//!
//! A pod's init containers run one after another and are retried until they succeed,
//! which is the supervisor's "start after X completed / is healthy". Each workload runs
//! the oneshots it (transitively) needs, so provisioning is never skipped whichever pod
//! starts first; the tasks are idempotent (they converge, "up to date" when done), so
//! every replica may run them. A longrun dependency is waited for, not run.

use super::objects::Ctx;
use super::workloads::{podman_container, security_context};
use super::{ExportError, CONFIG_MOUNT, CREDENTIALS_MOUNT};
use crate::plan::{Exec, Plan, Runtime, UnitKind};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// One init step of a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitStep {
    /// Wait until this longrun unit's Service accepts connections.
    Wait(String),
    /// Run this oneshot to completion.
    Run(String),
}

impl InitStep {
    /// The unit the step is about.
    pub fn unit(&self) -> &str {
        match self {
            InitStep::Wait(u) | InitStep::Run(u) => u,
        }
    }
}

/// What `unit` needs before it starts, in the plan's start order: its longrun
/// dependencies (waited for) and its oneshots with theirs (run).
pub fn init_steps(plan: &Plan, unit: &str) -> Vec<InitStep> {
    let mut needed = BTreeSet::new();
    let mut todo: Vec<&str> = vec![unit];
    while let Some(name) = todo.pop() {
        let Some(u) = plan.unit(name) else { continue };
        for d in &u.depends_on {
            let oneshot = plan.unit(&d.unit).map(|x| x.kind) == Some(UnitKind::Oneshot);
            if needed.insert(d.unit.clone()) && oneshot {
                todo.push(&d.unit);
            }
        }
    }
    plan.units
        .iter()
        .filter(|u| needed.contains(&u.name))
        .map(|u| match u.kind {
            UnitKind::Longrun => InitStep::Wait(u.name.clone()),
            UnitKind::Oneshot => InitStep::Run(u.name.clone()),
        })
        .collect()
}

/// The init containers of `unit`'s pod.
pub fn init_containers(ctx: &Ctx, unit: &str) -> Result<Vec<Value>, ExportError> {
    init_steps(ctx.plan, unit)
        .iter()
        .map(|step| step_container(ctx, step))
        .collect()
}

fn step_container(ctx: &Ctx, step: &InitStep) -> Result<Value, ExportError> {
    let name = step.unit();
    let u = ctx.plan.unit(name).ok_or_else(|| ExportError::Unit {
        key: name.into(),
        message: "dependency missing from the plan".into(),
    })?;
    match (step, &u.exec, &u.runtime) {
        (InitStep::Wait(_), _, _) => Ok(binary_container(ctx, &format!("wait-{name}"), &["task", "wait", name])),
        (InitStep::Run(_), Exec::Task(_), _) => Ok(binary_container(
            ctx,
            &format!("run-{name}"),
            &["task", "run", name, "--forward-to-services"],
        )),
        (InitStep::Run(_), Exec::Command(_), Runtime::Podman(_)) => {
            let mut c = podman_container(ctx, u)?;
            c["name"] = json!(format!("run-{name}"));
            Ok(c)
        }
        (InitStep::Run(_), Exec::Command(_), Runtime::Process) => Err(ExportError::Unit {
            key: u.config_key.clone(),
            message: format!(
                "oneshot {name} runs a host program; give the section image = \"…\" (runtime = \"podman\") to export it"
            ),
        }),
    }
}

/// A container of our own image running `prometheus-stack ARGS` with the config and
/// the secrets mounted where the single server has them.
pub fn binary_container(ctx: &Ctx, name: &str, args: &[&str]) -> Value {
    let config = format!("{CONFIG_MOUNT}/stack.toml");
    let mut argv = vec!["prometheus-stack", "--config", &config];
    argv.extend_from_slice(args);
    json!({
        "name": name,
        "image": ctx.opts.image,
        "command": argv,
        "env": [{"name": "CREDENTIALS_DIRECTORY", "value": CREDENTIALS_MOUNT}],
        "volumeMounts": [
            {"name": "stack-config", "mountPath": CONFIG_MOUNT, "readOnly": true},
            {"name": "stack-secrets", "mountPath": CREDENTIALS_MOUNT, "readOnly": true}
        ],
        "securityContext": security_context(&crate::plan::Capabilities::none())
    })
}

/// The volumes `binary_container` mounts.
pub fn binary_volumes(ctx: &Ctx) -> Vec<Value> {
    vec![
        json!({"name": "stack-config", "configMap": {"name": ctx.config_name()}}),
        json!({"name": "stack-secrets", "secret": {"secretName": ctx.secret_name()}}),
    ]
}
