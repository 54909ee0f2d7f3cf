//! NetworkPolicies: every pod closed for ingress except the ports the proxy routes
//! (public through the cluster's ingress) and the ports its clients use, from them only.
//! So Logto's admin port and the databases are unreachable except from their clients,
//! as on one server where they listen on loopback.

use super::objects::Ctx;
use super::tasks::{init_steps, InitStep};
use crate::plan::{Plan, RouteAction, UnitKind};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// The default deny plus one policy per longrun unit.
pub fn policies(ctx: &Ctx) -> Vec<Value> {
    let mut out = vec![json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": ctx.meta("default-deny-ingress"),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}
    })];
    for u in ctx
        .plan
        .units
        .iter()
        .filter(|u| u.kind == UnitKind::Longrun && !ctx.services.is_external(&u.name))
    {
        let mut rules = Vec::new();
        for p in u.port.iter().chain(u.ports.values()) {
            let port = json!([{"protocol": "TCP", "port": p}]);
            if routed(ctx, *p) {
                rules.push(json!({"ports": port}));
                continue;
            }
            let from: Vec<Value> = allowed_from(ctx, &u.name, *p)
                .iter()
                .map(|c| json!({"podSelector": {"matchLabels": ctx.selector(c)}}))
                .collect();
            if !from.is_empty() {
                rules.push(json!({"ports": port, "from": from}));
            }
        }
        out.push(json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": ctx.meta(&format!("{}-ingress", u.name)),
            "spec": {
                "podSelector": {"matchLabels": ctx.selector(&u.name)},
                "policyTypes": ["Ingress"],
                "ingress": rules
            }
        }));
    }
    out
}

/// Whether the proxy routes a site path to `port` (it is public through the ingress).
pub fn routed(ctx: &Ctx, port: u16) -> bool {
    ctx.plan
        .proxy
        .iter()
        .flat_map(|p| &p.sites)
        .flat_map(|s| &s.routes)
        .any(|r| matches!(&r.action, RouteAction::Unit { port: p, .. } if *p == port))
}

/// The workloads whose pods use `unit`'s `port`: a unit in the pod (its own container
/// or a oneshot it runs) whose definition names the port on loopback.
pub fn allowed_from(ctx: &Ctx, unit: &str, port: u16) -> BTreeSet<String> {
    ctx.plan
        .units
        .iter()
        .filter(|w| w.kind == UnitKind::Longrun && w.name != unit)
        .filter(|w| {
            waits_for(ctx.plan, &w.name, unit, port)
                || pod_units(ctx.plan, &w.name)
                    .iter()
                    .any(|m| uses_port(ctx.plan, m, port))
        })
        .map(|w| w.name.clone())
        .collect()
}

/// Whether `workload`'s init containers wait for `unit` on `port` (its main port).
fn waits_for(plan: &Plan, workload: &str, unit: &str, port: u16) -> bool {
    plan.unit(unit).and_then(|u| u.port) == Some(port)
        && init_steps(plan, workload).contains(&InitStep::Wait(unit.to_string()))
}

/// The units whose code runs in `workload`'s pod.
fn pod_units(plan: &Plan, workload: &str) -> Vec<String> {
    let mut out = vec![workload.to_string()];
    out.extend(
        init_steps(plan, workload)
            .into_iter()
            .filter_map(|s| match s {
                InitStep::Run(u) => Some(u),
                InitStep::Wait(_) => None,
            }),
    );
    out
}

/// Whether a unit's definition (its plan JSON: argv, env, task parameters) names the port
/// as `127.0.0.1:P`, `localhost:P` or a task's `"port":P`.
fn uses_port(plan: &Plan, unit: &str, port: u16) -> bool {
    let Some(u) = plan.unit(unit) else {
        return false;
    };
    let mut def = serde_json::to_value(&u.exec)
        .unwrap_or_default()
        .to_string();
    def.push_str(&serde_json::to_value(&u.env).unwrap_or_default().to_string());
    [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("\"port\":{port}"),
    ]
    .iter()
    .any(|needle| contains_port(&def, needle))
}

/// `needle` not followed by another digit (`:3001` is not `:30010`).
fn contains_port(hay: &str, needle: &str) -> bool {
    hay.match_indices(needle)
        .any(|(i, _)| !hay[i + needle.len()..].starts_with(|c: char| c.is_ascii_digit()))
}
