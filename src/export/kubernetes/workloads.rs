//! Longrun units as workloads: StatefulSet + PVC for units that own data (PostgreSQL,
//! the object store, any container with volumes), Deployment otherwise; a Service each.

use super::env::{container_env, secret_ref};
use super::objects::Ctx;
use super::probes::probes;
use super::tasks::{binary_volumes, init_containers, init_steps};
use super::{ExportError, GPU_MIN_FREE_ANNOTATION};
use crate::plan::{Capabilities, Exec, Runtime, TaskSpec, Unit, UnitKind};
use serde_json::{json, Value};

/// Size of each claim; the operator sizes it for the site (kustomize patch).
const CLAIM_SIZE: &str = "10Gi";
/// Where the PostgreSQL image keeps its data (PGDATA is a folder inside the mount).
const PG_MOUNT: &str = "/var/lib/postgresql/data";

/// Every longrun unit's workload and Service.
pub fn workloads(ctx: &Ctx) -> Result<Vec<Value>, ExportError> {
    let mut out = Vec::new();
    for u in ctx
        .plan
        .units
        .iter()
        .filter(|u| u.kind == UnitKind::Longrun && !ctx.services.is_external(&u.name))
    {
        let (container, claims) = main_container(ctx, u)?;
        out.push(workload(ctx, u, container, claims)?);
        out.extend(service(ctx, u));
    }
    Ok(out)
}

/// The pod's main container and the claims it mounts.
fn main_container(ctx: &Ctx, u: &Unit) -> Result<(Value, Vec<Value>), ExportError> {
    if let Some(TaskSpec::PostgresInitDb(pg)) = &u.prepare {
        let image = match &pg.container {
            Some(c) => c.image.clone(),
            None => pgvector_image(&pg.bin_dir.display().to_string()),
        };
        return Ok(postgres_container(ctx, u, image));
    }
    let mut c = podman_container(ctx, u)?;
    let mut claims = Vec::new();
    let mut mounts = Vec::new();
    if let Runtime::Podman(p) = &u.runtime {
        for v in &p.volumes {
            let path = v.split(':').nth(1).unwrap_or(v);
            let name = claim_name(path);
            mounts.push(json!({"name": name, "mountPath": path}));
            claims.push(claim(&name));
        }
    }
    if !mounts.is_empty() {
        c["volumeMounts"] = json!(mounts);
    }
    if let Some(p) = probes(u) {
        for (k, v) in p {
            c[k] = v;
        }
    }
    Ok((c, claims))
}

/// A podman unit's container: image, argv as `args` (podman's trailing argv replaces
/// the image's CMD, not its ENTRYPOINT, as `args` does), env, ports, capabilities.
pub fn podman_container(ctx: &Ctx, u: &Unit) -> Result<Value, ExportError> {
    let Runtime::Podman(p) = &u.runtime else {
        return Err(ExportError::Unit {
            key: format!("{}.image", u.config_key),
            message: format!(
                "unit {} runs a host program; give it image = \"…\" (runtime = \"podman\") to export it",
                u.name
            ),
        });
    };
    let mut c = json!({
        "name": u.name,
        "image": p.image,
        "env": container_env(ctx, u)?,
        "securityContext": security_context(&p.caps),
    });
    if let Exec::Command(argv) = &u.exec {
        if !argv.is_empty() {
            let args: Vec<String> = argv
                .iter()
                .map(|a| ctx.services.rewrite(&u.name, a))
                .collect();
            c["args"] = json!(args);
        }
    }
    let ports: Vec<Value> = u
        .port
        .iter()
        .map(|p| json!({"name": "main", "containerPort": p}))
        .chain(
            u.ports
                .iter()
                .map(|(n, p)| json!({"name": n, "containerPort": p})),
        )
        .collect();
    if !ports.is_empty() && u.kind == UnitKind::Longrun {
        c["ports"] = json!(ports);
    }
    if u.gpu.is_some() || p.gpu_devices {
        c["resources"] = json!({"limits": {"nvidia.com/gpu": 1}});
    }
    Ok(c)
}

/// `no-new-privileges` as podman sets it, and the unit's capabilities.
pub fn security_context(caps: &Capabilities) -> Value {
    match caps {
        Capabilities::PodmanDefault => json!({"allowPrivilegeEscalation": false}),
        Capabilities::Only(list) => json!({
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"], "add": list}
        }),
    }
}

/// The pgvector image of a native server's major version (from its bin_dir).
fn pgvector_image(bin_dir: &str) -> String {
    let major = bin_dir
        .split('/')
        .find_map(|s| s.parse::<u32>().ok())
        .unwrap_or(17);
    crate::stack::postgres::pgvector_image(&major.to_string())
}

/// PostgreSQL from `image` (the unit's own in the podman form), with the plan's server
/// settings; the superuser password is the store's.
fn postgres_container(ctx: &Ctx, u: &Unit, image: String) -> (Value, Vec<Value>) {
    let mut args = vec!["postgres".to_string()];
    if let Exec::Command(argv) = &u.exec {
        let mut it = argv.iter().skip(1);
        while let Some(a) = it.next() {
            match (a.as_str(), it.next()) {
                ("-c", Some(s)) if s.starts_with("unix_socket_directories=") => {}
                ("-c", Some(s)) => {
                    let s = super::listen_rewrite("", s).unwrap_or_else(|| s.clone());
                    args.extend(["-c".to_string(), s]);
                }
                _ => {}
            }
        }
    }
    let port = u.port.unwrap_or(5432);
    let su = crate::stack::postgres::superuser_secret(&u.name);
    let mut c = json!({
        "name": u.name,
        "image": image,
        "args": args,
        "env": [
            {"name": "POSTGRES_PASSWORD", "valueFrom": secret_ref(ctx, &su)},
            {"name": "PGDATA", "value": format!("{PG_MOUNT}/pgdata")},
            {"name": "PGPORT", "value": port.to_string()}
        ],
        "ports": [{"name": "main", "containerPort": port}],
        "volumeMounts": [{"name": "data", "mountPath": PG_MOUNT}],
        "securityContext": {"allowPrivilegeEscalation": false}
    });
    if let Some(p) = probes(u) {
        for (k, v) in p {
            c[k] = v;
        }
    }
    (c, vec![claim("data")])
}

fn claim_name(path: &str) -> String {
    let s: String = path
        .trim_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if s.is_empty() {
        "data".into()
    } else {
        s
    }
}

fn claim(name: &str) -> Value {
    json!({
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": CLAIM_SIZE}}}
    })
}

/// Deployment, or StatefulSet when the unit owns claims.
fn workload(
    ctx: &Ctx,
    u: &Unit,
    container: Value,
    claims: Vec<Value>,
) -> Result<Value, ExportError> {
    let replicas = ctx.opts.replicas.get(&u.name).copied().unwrap_or(1);
    if !claims.is_empty() && replicas != 1 {
        return Err(ExportError::Replicas {
            unit: u.name.clone(),
            message: "keeps its data on one volume (StatefulSet): it runs one replica; scale the stateless units".into(),
        });
    }
    let mut pod = json!({
        "metadata": {"labels": ctx.selector(&u.name)},
        "spec": {
            "enableServiceLinks": false,
            "initContainers": init_containers(ctx, &u.name)?,
            "containers": [container],
            "terminationGracePeriodSeconds": u.stop_timeout.as_secs().max(1),
        }
    });
    if !init_steps(ctx.plan, &u.name).is_empty() {
        pod["spec"]["volumes"] = json!(binary_volumes(ctx));
    }
    if let Some(g) = &u.gpu {
        if let Some(min) = g.min_free {
            pod["metadata"]["annotations"] = json!({GPU_MIN_FREE_ANNOTATION: min.to_string()});
        }
    }
    let mut spec = json!({"replicas": replicas, "selector": {"matchLabels": ctx.selector(&u.name)}, "template": pod});
    let kind = if claims.is_empty() {
        "Deployment"
    } else {
        spec["serviceName"] = json!(u.name);
        spec["volumeClaimTemplates"] = json!(claims);
        "StatefulSet"
    };
    let mut meta = ctx.meta(&u.name);
    if let Some(min) = u.gpu.as_ref().and_then(|g| g.min_free) {
        meta["annotations"] = json!({GPU_MIN_FREE_ANNOTATION: min.to_string()});
    }
    Ok(json!({"apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": spec}))
}

/// The unit's Service: its main port, and named ports something else uses; none for a
/// unit without a port.
fn service(ctx: &Ctx, u: &Unit) -> Option<Value> {
    u.port?;
    let mut ports: Vec<Value> = u
        .port
        .iter()
        .map(|p| json!({"name": "main", "port": p, "targetPort": p}))
        .collect();
    for (name, p) in &u.ports {
        if !super::network_policy::allowed_from(ctx, &u.name, *p).is_empty()
            || super::network_policy::routed(ctx, *p)
        {
            ports.push(json!({"name": name, "port": p, "targetPort": p}));
        }
    }
    Some(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": ctx.meta(&u.name),
        "spec": {"selector": ctx.selector(&u.name), "ports": ports}
    }))
}
