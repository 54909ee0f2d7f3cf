//! `export kubernetes`: the plan as manifests (see `export::kubernetes`).

use super::Ctx;
use crate::export::kubernetes::{self, IngressMode, Options, SecretsMode};
use crate::plan::BuildOptions;
use anyhow::{bail, Context};
use clap::{Subcommand, ValueEnum};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

/// `export …`
#[derive(Subcommand, Debug)]
pub enum ExportTarget {
    /// Write Kubernetes manifests and a kustomization.yaml for this plan
    #[command(long_about = KUBERNETES_ABOUT)]
    Kubernetes(KubernetesArgs),
}

const KUBERNETES_ABOUT: &str = "\
Write the plan as plain Kubernetes manifests plus a kustomization.yaml, for \
`kubectl apply -k DIR` (manifests are JSON, which is YAML).

PostgreSQL and the object store become StatefulSets with a PersistentVolumeClaim, \
Logto, LobeChat and other containers Deployments, each with a Service named after \
the unit; loopback addresses in env become those Service names. Oneshots (postgres-init, \
objects-init, logto-seed, logto-provision) run as init containers, in dependency \
order, in every pod that needs them: `prometheus-stack task run NAME` from the image \
built by packaging/kubernetes/Containerfile (--image). Health checks become startup, \
readiness and liveness probes; the proxy's sites an Ingress or HTTPRoute with the \
same hosts, paths and body limits; NetworkPolicies admit each port only from its \
clients (or from the ingress for routed ports). GPU units request nvidia.com/gpu and \
carry min_free as the annotation prometheus-stack.io/gpu-min-free.

With [services.postgres] external_url = \"postgres://HOST:PORT\" (a managed PostgreSQL) \
no PostgreSQL is exported: DATABASE_URLs and the provisioning tasks use HOST:PORT, and \
the Secret's postgres-superuser key is that server's admin password (tasks connect \
without TLS: a server that requires TLS is not supported yet).

Not built: resource requests other than GPUs (add them by a kustomize patch).";

/// `export kubernetes` options.
#[derive(clap::Args, Debug)]
pub struct KubernetesArgs {
    /// Folder to write (created)
    #[arg(long, default_value = "kubernetes")]
    pub out: PathBuf,
    /// Namespace of every object
    #[arg(long, default_value = "prometheus-stack")]
    pub namespace: String,
    /// Replicas of a stateless unit, UNIT=N (repeatable), e.g. lobechat=3
    #[arg(long, value_parser = parse_replicas)]
    pub replicas: Vec<(String, u32)>,
    /// inline: a Secret with the store's values (the folder then holds secrets);
    /// external: references only, you create the Secret STACK-secrets
    #[arg(long, value_enum, default_value_t = SecretsArg::Inline)]
    pub secrets: SecretsArg,
    /// ingress: networking.k8s.io Ingress (ingress-nginx annotations);
    /// gateway: Gateway API HTTPRoute
    #[arg(long, value_enum, default_value_t = IngressArg::Ingress)]
    pub ingress: IngressArg,
    /// Image with this binary (packaging/kubernetes/Containerfile)
    #[arg(long, default_value = concat!("localhost/prometheus-stack:", env!("CARGO_PKG_VERSION")))]
    pub image: String,
    /// Gateway the HTTPRoutes attach to, NAME or NAMESPACE/NAME (--ingress=gateway)
    #[arg(long, default_value = "prometheus-stack")]
    pub gateway: String,
    /// IngressClass of the Ingresses [default: the cluster's default class]
    #[arg(long)]
    pub ingress_class: Option<String>,
    /// cert-manager ClusterIssuer that issues the sites' certificates
    #[arg(long)]
    pub cluster_issuer: Option<String>,
}

/// `--secrets`.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum SecretsArg {
    Inline,
    External,
}

/// `--ingress`.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum IngressArg {
    Ingress,
    Gateway,
}

fn parse_replicas(s: &str) -> Result<(String, u32), String> {
    let (unit, n) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: give UNIT=N, e.g. lobechat=3"))?;
    let n: u32 = n
        .parse()
        .map_err(|_| format!("{s:?}: {n:?} is not a number of replicas"))?;
    if n == 0 {
        return Err(format!("{s:?}: at least 1 replica"));
    }
    Ok((unit.to_string(), n))
}

/// `external_url`s of the config (the plan does not carry them: the server ignores them).
pub(super) fn external_of(ctx: &Ctx) -> anyhow::Result<BTreeMap<String, String>> {
    match ctx.config_choice() {
        super::ConfigChoice::File(p) => {
            let (cfg, _) = crate::config::load_file(&p).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(kubernetes::external_addresses(&cfg)?)
        }
        super::ConfigChoice::Embedded => Ok(BTreeMap::new()),
    }
}

/// Runs `export TARGET`.
pub fn export(ctx: &Ctx, target: ExportTarget) -> anyhow::Result<ExitCode> {
    let ExportTarget::Kubernetes(args) = target;
    let plan = match ctx.plan(BuildOptions { check_host: false }) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    let config_text = match &plan.source.path {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => crate::config::DEFAULT_CONFIG.to_string(),
    };
    let mut replicas = BTreeMap::new();
    for (unit, n) in args.replicas {
        if replicas.insert(unit.clone(), n).is_some() {
            bail!("--replicas {unit} given twice");
        }
    }
    let opts = Options {
        namespace: args.namespace,
        replicas,
        secrets: match args.secrets {
            SecretsArg::Inline => SecretsMode::Inline,
            SecretsArg::External => SecretsMode::External,
        },
        ingress: match args.ingress {
            IngressArg::Ingress => IngressMode::Ingress,
            IngressArg::Gateway => IngressMode::Gateway,
        },
        image: args.image,
        gateway: args.gateway,
        ingress_class: args.ingress_class,
        cluster_issuer: args.cluster_issuer,
        config_text,
        external: external_of(ctx)?,
    };
    let store = crate::secrets::SecretStore::new(&plan.stack.data_dir);
    let tree = kubernetes::export(&plan, &opts, &store)?;
    let n = kubernetes::write_tree(&tree, &args.out)?;
    println!(
        "{}: {n} files; apply with: kubectl apply -k {}",
        args.out.display(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
