//! `export kubernetes`: the plan as plain Kubernetes manifests plus a kustomization.
//!
//! Every object is built from the plan value (`show-config --json`), never from the
//! config again, so the cluster and the single server cannot drift. Manifests are JSON
//! files: JSON is YAML 1.2, so `kubectl apply -k`, kustomize and `kubernetes-validate`
//! read them as they are, and serde_json's output is byte-stable for golden tests
//! without a YAML emitter dependency (serde_yaml is unmaintained).

mod addresses;
mod env;
mod external;
mod ingress;
mod network_policy;
mod objects;
mod probes;
mod secrets;
mod tasks;
mod workloads;

pub use addresses::{listen_rewrite, ServiceMap};
pub use env::{secret_env_name, SECRET_ENV_PREFIX};
pub use external::external_addresses;
pub use tasks::{init_steps, InitStep};

use crate::plan::Plan;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Where the cluster's own binary reads the config and the secrets (the image's layout).
pub const CONFIG_MOUNT: &str = "/etc/prometheus-stack";
/// The Kubernetes Secret is mounted here; `CREDENTIALS_DIRECTORY` points at it, which
/// the secrets store reads before its own folder (as under systemd).
pub const CREDENTIALS_MOUNT: &str = "/run/credentials/prometheus-stack";
/// Annotation carrying a GPU unit's `min_free` (bytes); see README "Outgrowing one server".
pub const GPU_MIN_FREE_ANNOTATION: &str = "prometheus-stack.io/gpu-min-free";
/// Annotation carrying a route's body limit where the API has no field for it.
pub const MAX_BODY_ANNOTATION: &str = "prometheus-stack.io/max-body";

/// How secrets reach the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretsMode {
    /// A Secret object with the store's values (the tree then holds secrets).
    Inline,
    /// References only: the operator creates the Secret (e.g. from a vault).
    External,
}

/// How the proxy's routes reach the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngressMode {
    /// networking.k8s.io/v1 Ingress (ingress-nginx annotations for limits and timeouts).
    Ingress,
    /// Gateway API HTTPRoute attached to an existing Gateway.
    Gateway,
}

/// `export kubernetes` options.
#[derive(Debug, Clone)]
pub struct Options {
    pub namespace: String,
    /// Replicas per Deployment unit (others: 1).
    pub replicas: BTreeMap<String, u32>,
    pub secrets: SecretsMode,
    pub ingress: IngressMode,
    /// The image built from packaging/kubernetes/Containerfile (runs `task run`).
    pub image: String,
    /// Gateway the HTTPRoutes attach to (`--ingress=gateway`).
    pub gateway: String,
    /// IngressClass (`--ingress=ingress`); None = the cluster's default class.
    pub ingress_class: Option<String>,
    /// cert-manager ClusterIssuer for the sites' certificates; None = TLS Secrets exist.
    pub cluster_issuer: Option<String>,
    /// The config file's text, shipped as a ConfigMap for `task run`.
    pub config_text: String,
    /// Units served from outside the cluster (`external_url`): unit → `HOST:PORT`.
    pub external: BTreeMap<String, String>,
}

/// Why an export failed; each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{key}: {message}")]
    Unit { key: String, message: String },
    #[error("--replicas {unit}: {message}")]
    Replicas { unit: String, message: String },
    #[error("--secrets=inline: {0}; create the secrets by starting the daemon once on this host, or export with --secrets=external")]
    Secret(#[from] crate::secrets::SecretError),
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The exported tree: file name → manifest (kustomization.yaml included).
pub type Tree = BTreeMap<String, Value>;

/// Builds every manifest for `plan`; `store` is read only with `--secrets=inline`.
pub fn export(
    plan: &Plan,
    opts: &Options,
    store: &crate::secrets::SecretStore,
) -> Result<Tree, ExportError> {
    check_names(plan, opts)?;
    let ctx = objects::Ctx::new(plan, opts);
    let mut tree = Tree::new();
    objects::add(&mut tree, objects::namespace(&ctx));
    objects::add(&mut tree, objects::config_map(&ctx));
    if let Some(s) = secrets::secret(&ctx, store)? {
        objects::add(&mut tree, s);
    }
    for w in workloads::workloads(&ctx)? {
        objects::add(&mut tree, w);
    }
    for r in ingress::routes(&ctx) {
        objects::add(&mut tree, r);
    }
    for p in network_policy::policies(&ctx) {
        objects::add(&mut tree, p);
    }
    let kustomization = objects::kustomization(&ctx, &tree);
    tree.insert("kustomization.yaml".into(), kustomization);
    Ok(tree)
}

/// Writes the tree into `dir` (created); returns the number of files.
pub fn write_tree(tree: &Tree, dir: &Path) -> Result<usize, ExportError> {
    let io = |path: &Path, source| ExportError::Write {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    for (name, v) in tree {
        let path = dir.join(name);
        let mut text = serde_json::to_string_pretty(v).unwrap_or_default();
        text.push('\n');
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
    }
    Ok(tree.len())
}

/// Unit names become Service and object names: they must be DNS-1035 labels.
fn check_names(plan: &Plan, opts: &Options) -> Result<(), ExportError> {
    for u in &plan.units {
        let ok = u.name.len() <= 63
            && u.name.starts_with(|c: char| c.is_ascii_lowercase())
            && !u.name.ends_with('-')
            && u.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            return Err(ExportError::Unit {
                key: u.config_key.clone(),
                message: format!(
                    "unit name {:?} is not a Kubernetes object name (lower-case letters, digits, '-', starting with a letter, at most 63); rename the section",
                    u.name
                ),
            });
        }
    }
    for unit in opts.replicas.keys() {
        if plan.unit(unit).is_none() {
            return Err(ExportError::Replicas {
                unit: unit.clone(),
                message: "no such unit in the plan (see `prometheus-stack check`)".into(),
            });
        }
    }
    Ok(())
}
