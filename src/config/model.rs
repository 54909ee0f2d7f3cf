//! The stack.toml file as written by the operator: serde structs, unknown keys rejected.
//!
//! Nothing here is derived or checked beyond syntax; `plan::build` turns this into a `Plan`.

use super::units::{ByteSize, Dur};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub stack: StackSection,
    #[serde(default)]
    pub control: ControlSection,
    pub proxy: Option<ProxySection>,
    #[serde(default)]
    pub services: BTreeMap<String, ServiceSection>,
    #[serde(default)]
    pub gpu: GpuSection,
    pub metrics: Option<MetricsSection>,
    #[serde(default)]
    pub bundle: BundleSection,
    #[serde(default)]
    pub backup: BackupSection,
}

/// `[stack]`: names and places shared by every unit.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StackSection {
    #[serde(default = "default_stack_name")]
    pub name: String,
    /// Public domain: presets derive `lobe.DOMAIN` and `auth.DOMAIN` from it.
    pub domain: Option<String>,
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Sockets and pid files; default `/run/prometheus-stack` as root, else `DATA_DIR/run`.
    pub runtime_dir: Option<PathBuf>,
    /// Default runtime for units that do not set one.
    #[serde(default)]
    pub runtime: RuntimeName,
    /// No internet: presets turn off every feature that would call out.
    #[serde(default)]
    pub air_gapped: bool,
}

impl Default for StackSection {
    fn default() -> Self {
        StackSection {
            name: default_stack_name(),
            domain: None,
            data_dir: default_data_dir(),
            runtime_dir: None,
            runtime: RuntimeName::Process,
            air_gapped: false,
        }
    }
}

fn default_stack_name() -> String {
    "prometheus".into()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/prometheus-stack")
}

/// How a unit's process exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeName {
    #[default]
    Process,
    Podman,
}

/// `[control]`: the Unix socket the CLI talks to.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ControlSection {
    /// Default `/run/prometheus-stack/control.sock` (root) or `DATA_DIR/control.sock`.
    pub socket: Option<PathBuf>,
    /// Admin group: owns the socket (mode 0660) and its members may use every command
    /// (checked per connection with SO_PEERCRED; root and the daemon's user always may).
    /// Default `prometheus-stack-admin` (made by the Debian package) when it exists.
    /// Not the units' group: a unit must not be able to stop the stack or rotate secrets.
    pub group: Option<String>,
}

/// `[proxy]`: the TLS front door.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySection {
    #[serde(default = "default_https")]
    pub https: String,
    /// Plain HTTP listener that redirects to HTTPS; omit to disable.
    pub http: Option<String>,
    #[serde(default = "default_max_body")]
    pub max_body: ByteSize,
    #[serde(default = "default_upstream_timeout")]
    pub upstream_timeout: Dur,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Dur,
    #[serde(default = "default_header_timeout")]
    pub header_timeout: Dur,
    /// Open connections per listener (HTTPS and the HTTP redirect listener each have
    /// their own pool of this size); WebSocket tunnels count as their connection.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Open connections one client address may hold on each listener (IPv6: per /64);
    /// beyond it a new connection is closed at once. Default 256. `trusted_proxies`
    /// are not capped (a load balancer carries many clients).
    #[serde(default = "default_max_conns_per_ip")]
    pub max_conns_per_ip: usize,
    /// An HTTP/2 connection with no request open for this long is closed (GOAWAY).
    /// Default 5 min.
    #[serde(default = "default_h2_idle_timeout")]
    pub h2_idle_timeout: Dur,
    /// An HTTP/1.1 keep-alive connection waiting this long for its next request is
    /// closed. Default 75 s; `header_timeout` also bounds the wait (hyper runs the header
    /// timer while it waits), so the shorter of the two applies.
    #[serde(default = "default_keepalive_timeout")]
    pub keepalive_timeout: Dur,
    #[serde(default)]
    pub tls: TlsMode,
    /// Load balancers in front of the proxy whose X-Forwarded-For is kept (addresses or
    /// CIDR networks); from anyone else it is replaced by the peer address.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Strict-Transport-Security on every HTTPS answer: `max-age=SECONDS[; …]`, or "off".
    #[serde(default = "default_hsts")]
    pub hsts: String,
    #[serde(default)]
    pub site: Vec<SiteSection>,
}

fn default_https() -> String {
    "0.0.0.0:443".into()
}
fn default_max_body() -> ByteSize {
    ByteSize(100 << 20)
}
fn default_upstream_timeout() -> Dur {
    Dur::secs(600)
}
fn default_connect_timeout() -> Dur {
    Dur::secs(60)
}
fn default_header_timeout() -> Dur {
    Dur::secs(10)
}
fn default_hsts() -> String {
    "max-age=31536000".into()
}
fn default_max_connections() -> usize {
    10_000
}
fn default_max_conns_per_ip() -> usize {
    256
}
fn default_h2_idle_timeout() -> Dur {
    Dur::secs(300)
}
fn default_keepalive_timeout() -> Dur {
    Dur::secs(75)
}

/// Where site certificates come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// PEM files named per site (`cert`, `key`).
    #[default]
    Files,
    /// Our own CA under DATA_DIR/pki issues a leaf per site (air-gapped sites).
    Internal,
}

/// `[[proxy.site]]`: one host name (exact or `*.example.com`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSection {
    pub host: String,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Extra routes; presets add theirs for the hosts they own.
    #[serde(default)]
    pub routes: Vec<RouteSection>,
}

/// One route: a path prefix to a target or a redirect.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    pub path: String,
    /// A unit name (its `port`), `unit:portname`, or `host:port`.
    pub to: Option<String>,
    pub redirect: Option<String>,
    /// Per-route body limit (e.g. the bucket route); default `[proxy].max_body`.
    pub max_body: Option<ByteSize>,
}

/// `[services.NAME]`: a generic unit, or a preset with its own keys.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSection {
    /// The component this section configures; absent = a generic unit.
    pub preset: Option<Preset>,
    /// `false` leaves the unit out of the plan (handy to switch off a preset).
    pub enabled: Option<bool>,
    pub runtime: Option<RuntimeName>,
    pub command: Option<Vec<String>>,
    pub workdir: Option<PathBuf>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub env_files: Vec<PathBuf>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub port: Option<u16>,
    #[serde(default)]
    pub ports: BTreeMap<String, u16>,
    pub depends_on: Option<DependsOn>,
    pub health: Option<HealthSection>,
    pub restart: Option<RestartName>,
    pub backoff: Option<BackoffSection>,
    pub crash_loop: Option<CrashLoopSection>,
    pub kind: Option<KindName>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<Dur>,

    // --- podman runtime ---
    pub image: Option<String>,
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Run `--init` as PID 1 in the container (default true: node and busybox ignore SIGTERM).
    pub init: Option<bool>,
    /// The capabilities the container keeps, all others dropped (`CHOWN`, `cap_chown`…);
    /// unset: the generic default set (podman's minus SETFCAP, SETPCAP, SYS_CHROOT).
    pub capabilities: Option<Vec<String>>,

    // --- GPU ---
    pub gpu: Option<GpuUse>,

    // --- preset "postgres" ---
    pub bin_dir: Option<PathBuf>,
    pub extensions: Option<Vec<String>>,
    #[serde(default)]
    pub settings: BTreeMap<String, toml::Value>,
    pub databases: Option<Vec<String>>,
    /// `export kubernetes` only: a managed PostgreSQL (`postgres://HOST[:PORT]`) replaces
    /// the exported StatefulSet; the single server ignores it.
    pub external_url: Option<String>,

    // --- presets "rustfs" / "minio" ---
    pub binary: Option<PathBuf>,
    pub bucket: Option<String>,
    /// Anonymous GetObject on the bucket; default only for LobeChat v1 (v2 reads
    /// through presigned URLs, so the bucket stays private).
    pub public_read: Option<bool>,

    // --- presets "logto" / "lobechat" ---
    /// Native runtime: the unpacked release directory (Logto) or app directory (LobeChat).
    pub release_dir: Option<PathBuf>,
    /// Native runtime: the node binary; default `node` from PATH.
    pub node: Option<PathBuf>,
    /// LobeChat: "v2" (default) or "v1".
    pub edition: Option<String>,
    /// Public host of this preset (default derived from `[stack].domain`).
    pub host: Option<String>,
    /// Logto: expose the admin console on its own origin, e.g. "console.example.com".
    pub admin_host: Option<String>,
    /// Logto: domain of the address given to users who signed up without an email
    /// (LobeChat needs an `email` claim); default "users.invalid".
    pub user_email_domain: Option<String>,
}

/// `depends_on = ["db"]` or `depends_on = { db = "healthy" }`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum DependsOn {
    List(Vec<String>),
    Map(BTreeMap<String, ConditionName>),
}

/// When a dependency counts as satisfied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConditionName {
    Started,
    Healthy,
    Completed,
}

/// `health = { http = "…" }` and friends.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSection {
    pub http: Option<String>,
    pub tcp: Option<String>,
    pub exec: Option<Vec<String>>,
    pub log: Option<String>,
    pub interval: Option<Dur>,
    pub timeout: Option<Dur>,
    pub retries: Option<u32>,
    pub start_period: Option<Dur>,
}

/// `restart = "…"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartName {
    Always,
    OnFailure,
    Never,
}

/// `kind = "…"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KindName {
    Longrun,
    Oneshot,
}

/// `backoff = { initial = "100ms", max = "30s" }`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffSection {
    pub initial: Option<Dur>,
    pub max: Option<Dur>,
    /// How long a unit must stay up before the backoff resets (default 10 s).
    pub reset_after: Option<Dur>,
}

/// `crash_loop = { failures = 5, window = "60s" }`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CrashLoopSection {
    pub failures: Option<u32>,
    pub window: Option<Dur>,
}

/// `gpu = true` (podman: CDI device) or a memory policy table.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum GpuUse {
    Flag(bool),
    Policy(GpuPolicySection),
}

/// Per-unit GPU memory policy.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GpuPolicySection {
    pub min_free: Option<ByteSize>,
    pub max_used: Option<ByteSize>,
    pub grace: Option<Dur>,
    pub wait_timeout: Option<Dur>,
    /// Pass the GPUs into the container (podman runtime).
    pub devices: Option<bool>,
}

/// `[gpu]`: the NVML poller.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GpuSection {
    #[serde(default)]
    pub enabled: GpuEnabled,
    #[serde(default = "default_gpu_interval")]
    pub interval: Dur,
    #[serde(default = "default_alert_percent")]
    pub alert_used_percent: u8,
}

impl Default for GpuSection {
    fn default() -> Self {
        GpuSection {
            enabled: GpuEnabled::Auto,
            interval: default_gpu_interval(),
            alert_used_percent: default_alert_percent(),
        }
    }
}

fn default_gpu_interval() -> Dur {
    Dur::secs(5)
}
fn default_alert_percent() -> u8 {
    90
}

/// `enabled = "auto" | "on" | "off"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuEnabled {
    #[default]
    Auto,
    On,
    Off,
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    pub listen: String,
}

/// `[bundle]`: native artifacts to carry in offline bundles besides the images.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BundleSection {
    #[serde(default)]
    pub artifacts: Vec<PathBuf>,
}

/// `[backup]`: where backups go, when the daemon takes them, how many are kept.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSection {
    /// Default DATA_DIR/backups.
    pub dir: Option<PathBuf>,
    /// `"daily HH:MM"` (local time), `"hourly"` or `"off"`.
    #[serde(default = "default_backup_schedule")]
    pub schedule: String,
    /// Newest N kept; older ones are deleted after a new one verified.
    #[serde(default = "default_backup_keep")]
    pub keep: u32,
    /// The package's upgrade takes a backup first while the daemon runs.
    #[serde(default = "default_true")]
    pub before_upgrade: bool,
}

impl Default for BackupSection {
    fn default() -> Self {
        BackupSection {
            dir: None,
            schedule: default_backup_schedule(),
            keep: default_backup_keep(),
            before_upgrade: true,
        }
    }
}

fn default_backup_schedule() -> String {
    "off".into()
}
fn default_backup_keep() -> u32 {
    7
}
fn default_true() -> bool {
    true
}

// Untagged enums would hide the real problem ("did not match any variant"); these pick
// the form by the value's type so a bad size or condition is reported as such.

impl<'de> Deserialize<'de> for DependsOn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match toml::Value::deserialize(d)? {
            v @ toml::Value::Array(_) => Vec::<String>::deserialize(v)
                .map(DependsOn::List)
                .map_err(|e| D::Error::custom(format!("{e} (write [\"unit\", …])"))),
            v @ toml::Value::Table(_) => BTreeMap::<String, ConditionName>::deserialize(v)
                .map(DependsOn::Map)
                .map_err(|e| {
                    D::Error::custom(format!(
                        "{} (conditions: \"started\", \"healthy\", \"completed\")",
                        e.message().trim()
                    ))
                }),
            _ => Err(D::Error::custom(
                "expected a list of units or a table { unit = \"healthy\" }",
            )),
        }
    }
}

impl<'de> Deserialize<'de> for GpuUse {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match toml::Value::deserialize(d)? {
            toml::Value::Boolean(b) => Ok(GpuUse::Flag(b)),
            v @ toml::Value::Table(_) => GpuPolicySection::deserialize(v)
                .map(GpuUse::Policy)
                .map_err(|e| D::Error::custom(e.message().trim().to_string())),
            _ => Err(D::Error::custom(
                "expected true/false or a table { min_free = \"8GiB\", … }",
            )),
        }
    }
}

/// `preset = "…"`: the components this build knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    Postgres,
    Rustfs,
    Minio,
    Logto,
    Lobechat,
}

impl Preset {
    /// Every preset, in the order `check` lists them.
    pub const ALL: [Preset; 5] = [
        Preset::Postgres,
        Preset::Rustfs,
        Preset::Minio,
        Preset::Logto,
        Preset::Lobechat,
    ];

    /// The name written in the config.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Postgres => "postgres",
            Preset::Rustfs => "rustfs",
            Preset::Minio => "minio",
            Preset::Logto => "logto",
            Preset::Lobechat => "lobechat",
        }
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

// By hand rather than derived: an unknown name gets the list of known ones.
impl<'de> Deserialize<'de> for Preset {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
                serde::de::Error::custom(format!(
                    "unknown preset {name:?}; this build knows: {}",
                    known.join(", ")
                ))
            })
    }
}
