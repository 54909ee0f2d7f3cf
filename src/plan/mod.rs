//! The Plan: a validated, resolved, immutable description of everything the daemon runs.
//!
//! Built from the config by `build`; consumed by the supervisor, proxy, GPU poller and
//! CLI. Serializes (for `show-config` and reload diffs) with secrets as placeholders.

mod build;
pub mod cidr;
mod env;
mod graph;
mod host_checks;
mod proxy_plan;
mod section;
mod task;
#[cfg(test)]
mod taskspec_tests;

pub use build::{build, build_from_file, BuildOptions};
pub use env::{Encoding, EnvPart, EnvValue};
pub use graph::{dependents_closure, start_order};
pub use host_checks::find_executable;
pub use section::blank_unit;
pub use task::{
    BoxFuture, CustomError, CustomTask, PgRotate, TaskContext, TaskError, TaskFn, TaskSpec,
};

use crate::config::model::{GpuEnabled, TlsMode};
use nix::sys::signal::Signal;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the daemon will run, resolved.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub stack: StackInfo,
    pub control: ControlInfo,
    /// Units in start order (dependencies first); names are unique.
    pub units: Vec<Unit>,
    /// Secrets the units use, by name (values live in the secrets store, never here).
    pub secrets: BTreeMap<String, SecretSpec>,
    pub proxy: Option<ProxyPlan>,
    pub gpu: GpuPlan,
    pub metrics: Option<MetricsPlan>,
    /// Native files `bundle create` carries besides images.
    pub bundle_artifacts: Vec<PathBuf>,
    /// Where the plan came from (for `reload`).
    pub source: PlanSource,
    /// Non-fatal notes for `check` and `status` (e.g. "using the root S3 key").
    pub warnings: Vec<String>,
}

impl Plan {
    /// The unit with this name.
    pub fn unit(&self, name: &str) -> Option<&Unit> {
        self.units.iter().find(|u| u.name == name)
    }

    /// Unit definitions as JSON, for diffing on reload.
    pub fn fingerprint(unit: &Unit) -> String {
        serde_json::to_string(unit).unwrap_or_default()
    }
}

/// The config file the plan was built from.
#[derive(Debug, Clone, Serialize)]
pub struct PlanSource {
    /// As the operator named it, or `<embedded default>`.
    pub name: String,
    /// Absolute path to re-read on reload; None for the embedded default.
    pub path: Option<PathBuf>,
}

/// `[stack]` resolved.
#[derive(Debug, Clone, Serialize)]
pub struct StackInfo {
    pub name: String,
    pub domain: Option<String>,
    /// Absolute.
    pub data_dir: PathBuf,
    /// Sockets, pid files; absolute.
    pub runtime_dir: PathBuf,
    pub air_gapped: bool,
}

/// The control socket.
#[derive(Debug, Clone, Serialize)]
pub struct ControlInfo {
    pub socket: PathBuf,
    pub group: Option<String>,
}

/// A longrun service or a oneshot task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitKind {
    Longrun,
    Oneshot,
}

/// One thing the supervisor runs.
#[derive(Debug, Clone, Serialize)]
pub struct Unit {
    pub name: String,
    pub kind: UnitKind,
    pub exec: Exec,
    pub runtime: Runtime,
    pub user: Option<String>,
    pub group: Option<String>,
    pub workdir: Option<PathBuf>,
    pub env: BTreeMap<String, EnvValue>,
    pub env_files: Vec<PathBuf>,
    /// Main port (the proxy routes to it).
    pub port: Option<u16>,
    pub ports: BTreeMap<String, u16>,
    pub depends_on: Vec<Dependency>,
    pub health: Option<Health>,
    pub restart: RestartPolicy,
    pub backoff: Backoff,
    pub crash_loop: CrashLoop,
    #[serde(serialize_with = "ser_signal")]
    pub stop_signal: Signal,
    #[serde(serialize_with = "ser_dur")]
    pub stop_timeout: Duration,
    pub gpu: Option<GpuPolicy>,
    /// Runs before every start of the process (e.g. initdb once, stale pid file checks);
    /// an error fails this start attempt and counts like a crash.
    pub prepare: Option<TaskSpec>,
    /// "generic" or "preset NAME", for show-config and error messages.
    pub origin: String,
    /// Config key this unit came from (`services.NAME`), for error messages.
    pub config_key: String,
}

/// What runs.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Exec {
    /// argv; for podman an empty argv means the image's own command.
    Command(Vec<String>),
    /// A Rust function run inside the daemon (provisioning oneshots).
    Task(TaskSpec),
}

/// How the process exists.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Process,
    Podman(PodmanSpec),
}

/// Container settings of a podman unit.
#[derive(Debug, Clone, Serialize)]
pub struct PodmanSpec {
    pub image: String,
    /// `HOST_PATH:CONTAINER_PATH[:opts]`, host paths absolute (names resolved under DATA_DIR/volumes).
    pub volumes: Vec<String>,
    /// `--init` as PID 1.
    pub init: bool,
    /// Pass GPUs in (CDI `nvidia.com/gpu=all`).
    pub gpu_devices: bool,
    /// The Linux capabilities the container keeps.
    pub caps: Capabilities,
    /// `--user UID:GID` when the unit sets no `user`: a non-root id the image works with.
    pub image_user: Option<(u32, u32)>,
}

/// Which capabilities a container keeps (`no-new-privileges` is set for every container).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Capabilities {
    /// podman's built-in default set: for images whose needs are not known.
    PodmanDefault,
    /// `--cap-drop=all` plus exactly these (names without `CAP_`, upper case).
    Only(Vec<String>),
}

impl Capabilities {
    /// `--cap-drop=all` and nothing added back.
    pub fn none() -> Self {
        Capabilities::Only(Vec::new())
    }
}

/// A dependency edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependency {
    pub unit: String,
    pub condition: Condition,
}

/// When a dependency holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Condition {
    Started,
    Healthy,
    Completed,
}

/// A readiness/liveness check.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub probe: Probe,
    #[serde(serialize_with = "ser_dur")]
    pub interval: Duration,
    #[serde(serialize_with = "ser_dur")]
    pub timeout: Duration,
    /// Consecutive failures before a healthy unit is restarted.
    pub retries: u32,
    /// Failures inside this period after start do not count.
    #[serde(serialize_with = "ser_dur")]
    pub start_period: Duration,
}

/// How health is probed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    /// GET; healthy on a status below 400 unless the preset expects one exact code.
    Http {
        url: String,
        expect: Option<u16>,
    },
    Tcp(String),
    Exec(Vec<String>),
    /// Healthy once a line containing this text was logged.
    Log(String),
    /// A Rust check (e.g. `SELECT 1`).
    Task(TaskSpec),
}

/// `restart = …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

/// Jittered exponential restart delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Backoff {
    #[serde(serialize_with = "ser_dur")]
    pub initial: Duration,
    #[serde(serialize_with = "ser_dur")]
    pub max: Duration,
    /// Uptime after which the next failure starts again from `initial`.
    #[serde(serialize_with = "ser_dur")]
    pub reset_after: Duration,
}

/// N failures within a window → `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CrashLoop {
    pub failures: u32,
    #[serde(serialize_with = "ser_dur")]
    pub window: Duration,
}

/// Per-unit GPU memory policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuPolicy {
    /// Hold the unit in `pending` until this many bytes are free on some GPU.
    pub min_free: Option<u64>,
    /// Restart the unit when its GPU memory stays above this for `grace`.
    pub max_used: Option<u64>,
    #[serde(serialize_with = "ser_dur")]
    pub grace: Duration,
    #[serde(serialize_with = "ser_dur")]
    pub wait_timeout: Duration,
}

/// How a secret's first value is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretKind {
    /// Random URL-safe text of this many bytes of entropy.
    Random { bytes: usize },
    /// An RS256 private JWK set (LobeChat's JWKS_KEY).
    RsaJwks,
    /// Written by a provisioning task (e.g. an OIDC client id); not generated.
    Provided,
}

/// A secret the plan uses.
#[derive(Debug, Clone, Serialize)]
pub struct SecretSpec {
    pub kind: SecretKind,
    /// User that owns the file (it must read it); None = the daemon's user.
    pub owner: Option<String>,
    /// Units restarted after `secrets rotate`.
    pub consumers: Vec<String>,
    /// Applies a new value where it is used (e.g. ALTER ROLE) before consumers restart.
    pub rotate: Option<TaskSpec>,
    /// One line for `secrets list`.
    pub description: String,
}

/// `[proxy]` resolved, with preset routes merged in.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyPlan {
    pub https: String,
    pub http: Option<String>,
    pub max_body: u64,
    /// Peers whose X-Forwarded-For is trusted (`[proxy] trusted_proxies`).
    pub trusted_proxies: Vec<cidr::Cidr>,
    #[serde(serialize_with = "ser_dur")]
    pub upstream_timeout: Duration,
    #[serde(serialize_with = "ser_dur")]
    pub connect_timeout: Duration,
    #[serde(serialize_with = "ser_dur")]
    pub header_timeout: Duration,
    pub max_connections: usize,
    /// `[proxy] max_conns_per_ip`.
    pub max_conns_per_ip: usize,
    /// `[proxy] h2_idle_timeout`.
    #[serde(serialize_with = "ser_dur")]
    pub h2_idle_timeout: Duration,
    /// `[proxy] keepalive_timeout`.
    #[serde(serialize_with = "ser_dur")]
    pub keepalive_timeout: Duration,
    /// Strict-Transport-Security value; None = off.
    pub hsts: Option<String>,
    pub tls: TlsMode,
    pub sites: Vec<Site>,
    /// Internal CA certificate (tls = "internal"): units that call our HTTPS trust it.
    pub ca_bundle: Option<PathBuf>,
    /// DATA_DIR/pki, where the internal CA and leaves live.
    pub pki_dir: PathBuf,
}

/// One public host.
#[derive(Debug, Clone, Serialize)]
pub struct Site {
    pub host: String,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub routes: Vec<Route>,
}

/// One path prefix on a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub path: String,
    pub action: RouteAction,
    pub max_body: Option<u64>,
    /// Responses are user uploads, served inert (sandbox CSP, nosniff, downloads for
    /// anything but raster images and media): the bucket route.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub uploads: bool,
}

/// Where a route goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteAction {
    /// A unit's port on loopback; 503 while the unit is not healthy.
    Unit { unit: String, port: u16 },
    /// A fixed `host:port`.
    Address(String),
    /// 302 to this location.
    Redirect(String),
}

/// `[gpu]` resolved.
#[derive(Debug, Clone, Serialize)]
pub struct GpuPlan {
    pub enabled: GpuEnabled,
    #[serde(serialize_with = "ser_dur")]
    pub interval: Duration,
    pub alert_used_percent: u8,
}

/// `[metrics]` resolved.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsPlan {
    pub listen: String,
}

fn ser_dur<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&crate::config::Dur(*d))
}

fn ser_signal<S: Serializer>(sig: &Signal, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(sig.as_str())
}
