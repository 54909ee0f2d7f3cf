//! What every manifest shares: the export context, metadata, labels and file names,
//! plus the small objects (Namespace, the config's ConfigMap, the kustomization).

use super::{Options, ServiceMap, Tree};
use crate::plan::Plan;
use serde_json::{json, Value};

/// The plan, the options and the plan's port → Service map.
pub struct Ctx<'a> {
    pub plan: &'a Plan,
    pub opts: &'a Options,
    pub services: ServiceMap,
}

impl<'a> Ctx<'a> {
    /// The context of one export.
    pub fn new(plan: &'a Plan, opts: &'a Options) -> Self {
        Ctx {
            plan,
            opts,
            services: ServiceMap::with_external(plan, opts.external.clone()),
        }
    }

    /// The Secret holding the stack's secrets (one key per secret name).
    pub fn secret_name(&self) -> String {
        format!("{}-secrets", self.plan.stack.name)
    }

    /// The ConfigMap holding stack.toml for `task run`.
    pub fn config_name(&self) -> String {
        format!("{}-config", self.plan.stack.name)
    }

    /// Labels selecting one unit's pods.
    pub fn selector(&self, unit: &str) -> Value {
        json!({"app.kubernetes.io/name": unit, "app.kubernetes.io/instance": self.plan.stack.name})
    }

    /// Metadata of an object named `name` (a unit's objects carry its selector labels).
    pub fn meta(&self, name: &str) -> Value {
        let mut labels = self.selector(name);
        labels["app.kubernetes.io/part-of"] = json!("prometheus-stack");
        labels["app.kubernetes.io/managed-by"] = json!("prometheus-stack-export");
        json!({"name": name, "namespace": self.opts.namespace, "labels": labels})
    }
}

/// Adds an object under `KIND-NAME.json`.
pub fn add(tree: &mut Tree, obj: Value) {
    let kind = obj["kind"]
        .as_str()
        .unwrap_or("object")
        .to_ascii_lowercase();
    let name = obj["metadata"]["name"].as_str().unwrap_or("unnamed");
    tree.insert(format!("{kind}-{name}.json"), obj);
}

/// The namespace everything lives in.
pub fn namespace(ctx: &Ctx) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": ctx.opts.namespace, "labels": {"app.kubernetes.io/part-of": "prometheus-stack"}}
    })
}

/// stack.toml as the single server reads it: `task run` builds the same plan from it.
pub fn config_map(ctx: &Ctx) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": ctx.meta(&ctx.config_name()),
        "data": {"stack.toml": ctx.opts.config_text}
    })
}

/// `kustomization.yaml` (JSON is YAML): every file, the namespace, the image to swap.
pub fn kustomization(ctx: &Ctx, tree: &Tree) -> Value {
    let (name, tag) = split_image(&ctx.opts.image);
    json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": ctx.opts.namespace,
        "resources": tree.keys().collect::<Vec<_>>(),
        "images": [{"name": name, "newTag": tag}]
    })
}

/// `registry/name:tag` → (name, tag); a digest or no tag keeps the whole reference.
fn split_image(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') && !n.contains('@') => (n, t),
        _ => (image, "latest"),
    }
}
