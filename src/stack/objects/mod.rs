//! The S3 object store (presets "rustfs" and "minio"), its objects-init oneshot, and the
//! same-origin bucket route `https://APP_HOST/BUCKET/…` (DESIGN §2 and the proxy layout).
//!
//! Both stores listen on loopback only; the browser reaches the bucket through our proxy on
//! the app origin with Host and path untouched, so URLs presigned for `S3_ENDPOINT = the app
//! origin` verify at the store and no CORS, extra host or certificate is needed.
//!
//! LobeChat signs with the store's root key (secrets `objects-root-user` /
//! `objects-root-password`): a dedicated key needs MinIO's admin API (madmin bodies
//! encrypted with argon2id + DARE, no server here to test it against) or RustFS's
//! (`accesskey create` failed, rustfs#2205). The plan carries a warning that `check` and
//! `status` show, and objects-init logs the same note.
//!
//! For peers: [`lobechat_s3_env`], [`lobechat_dependency`], [`init_unit_name`],
//! [`find_store`], [`app_host`], [`app_origin`].

pub mod datadir;
pub mod init;
mod minio;
mod rustfs;
pub mod s3;

use super::{Expansion, PresetCtx};
use crate::config::model::{Preset, ServiceSection};
use crate::config::Issue;
use crate::plan::Unit;
use crate::plan::{
    blank_unit, Capabilities, Condition, Dependency, EnvValue, Exec, Health, PodmanSpec, Probe,
    Route, RouteAction, Runtime, SecretKind, SecretSpec, TaskSpec,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Secret holding the store's root access key.
pub const ROOT_USER_SECRET: &str = "objects-root-user";
/// Secret holding the store's root secret key.
pub const ROOT_PASSWORD_SECRET: &str = "objects-root-password";
/// Default S3 port (DESIGN §2).
pub const DEFAULT_PORT: u16 = 29000;
/// Default bucket name.
pub const DEFAULT_BUCKET: &str = "lobe";
/// Body limit of the bucket route: uploads are streamed, so this is a sanity cap only.
pub const BUCKET_ROUTE_MAX_BODY: u64 = 5 << 30;
/// Region the stores accept by default and LobeChat signs with.
pub const REGION: &str = "us-east-1";

/// Which server a preset runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    RustFs,
    Minio,
}

impl Flavor {
    /// The preset name.
    pub fn preset(self) -> &'static str {
        match self {
            Flavor::RustFs => "rustfs",
            Flavor::Minio => "minio",
        }
    }

    fn from_preset(p: Preset) -> Option<Flavor> {
        match p {
            Preset::Rustfs => Some(Flavor::RustFs),
            Preset::Minio => Some(Flavor::Minio),
            _ => None,
        }
    }
}

/// What a flavor needs to build its command line and env.
pub(crate) struct LaunchInput<'a> {
    /// Native: the binary; podman: unused (the image's own program).
    pub program: &'a str,
    pub podman: bool,
    pub port: u16,
    pub console_port: u16,
    /// Where the data lives as the server sees it (host dir, or `/data` in a container).
    pub data_dir: &'a Path,
    /// The browser's origin, for the server-wide CORS setting.
    pub app_origin: Option<&'a str>,
}

/// A flavor's command, env and health path.
pub(crate) struct Launch {
    pub exec: Exec,
    pub env: BTreeMap<String, EnvValue>,
    pub health_path: &'static str,
    pub default_image: &'static str,
    /// What the flavor's container keeps (no-new-privileges always).
    pub caps: Capabilities,
    /// The container's non-root `--user` when the unit sets none (it owns the data dir).
    pub image_user: Option<(u32, u32)>,
}

/// The objects-init unit's name for an objects unit (`objects` → `objects-init`).
pub fn init_unit_name(objects_unit: &str) -> String {
    format!("{objects_unit}-init")
}

/// The first enabled rustfs/minio unit in the config: (name, section, flavor).
pub fn find_store(cfg: &crate::config::ConfigFile) -> Option<(&str, &ServiceSection, Flavor)> {
    cfg.services.iter().find_map(|(n, s)| {
        if s.enabled == Some(false) {
            return None;
        }
        let f = Flavor::from_preset(s.preset?)?;
        Some((n.as_str(), s, f))
    })
}

/// The public app host: `services.<lobechat>.host`, else `lobe.` + `[stack].domain`.
pub fn app_host(cfg: &crate::config::ConfigFile) -> Option<String> {
    let lobe = cfg
        .services
        .values()
        .find(|s| s.preset == Some(Preset::Lobechat) && s.enabled != Some(false));
    if let Some(h) = lobe.and_then(|s| s.host.clone()) {
        return Some(h.to_ascii_lowercase());
    }
    cfg.stack
        .domain
        .as_ref()
        .map(|d| format!("lobe.{}", d.to_ascii_lowercase()))
}

/// `https://APP_HOST` (with the proxy's port when it is not 443): LobeChat's S3 endpoint.
pub fn app_origin(cfg: &crate::config::ConfigFile) -> Option<String> {
    let host = app_host(cfg)?;
    Some(crate::stack::common::https_origin(cfg, &host))
}

/// LobeChat's S3 env (DESIGN §2; plus S3_PUBLIC_DOMAIN and S3_REGION): None when the
/// config has no object store preset.
pub fn lobechat_s3_env(ctx: &PresetCtx) -> Option<BTreeMap<String, EnvValue>> {
    let (_, section, _) = find_store(ctx.cfg)?;
    let bucket = section.bucket.as_deref().unwrap_or(DEFAULT_BUCKET);
    let endpoint = app_origin(ctx.cfg).unwrap_or_else(|| {
        // No public host: only server-side access works; the objects preset warns.
        format!("http://127.0.0.1:{}", section.port.unwrap_or(DEFAULT_PORT))
    });
    let (key_id, secret) = app_key_secrets();
    let mut env = BTreeMap::new();
    env.insert("S3_ENDPOINT".into(), EnvValue::text(&endpoint));
    // Path-style public file URLs are S3_PUBLIC_DOMAIN/BUCKET/KEY: anonymous GetObject.
    env.insert("S3_PUBLIC_DOMAIN".into(), EnvValue::text(endpoint));
    env.insert("S3_REGION".into(), EnvValue::text(REGION));
    env.insert("S3_BUCKET".into(), EnvValue::text(bucket));
    env.insert("S3_ENABLE_PATH_STYLE".into(), EnvValue::text("1"));
    env.insert("S3_SET_ACL".into(), EnvValue::text("0"));
    env.insert("S3_ACCESS_KEY_ID".into(), EnvValue::secret(key_id));
    env.insert("S3_SECRET_ACCESS_KEY".into(), EnvValue::secret(secret));
    Some(env)
}

/// The dependency LobeChat needs: objects-init completed (bucket and policy in place).
pub fn lobechat_dependency(ctx: &PresetCtx) -> Option<Dependency> {
    let (name, _, _) = find_store(ctx.cfg)?;
    Some(Dependency {
        unit: init_unit_name(name),
        condition: Condition::Completed,
    })
}

/// The secrets LobeChat signs with: the root key (see the module doc).
fn app_key_secrets() -> (&'static str, &'static str) {
    (ROOT_USER_SECRET, ROOT_PASSWORD_SECRET)
}

/// Top-level paths of LobeChat (v1 and v2) that a bucket served at `/BUCKET` would hide.
const APP_PATHS: &[&str] = &[
    "api",
    "trpc",
    "webapi",
    "_next",
    "oidc",
    "files",
    "chat",
    "settings",
    "discover",
    "knowledge",
    "login",
    "signin",
    "signup",
    "next-auth",
    "welcome",
    "image",
    "profile",
    "market",
    "changelog",
    "share",
    "page",
    "repos",
    "static",
    "icons",
    "images",
];

/// S3 bucket naming rules (path-style): 3–63 of `a-z0-9.-`, starting and ending alphanumeric.
pub fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && b.starts_with(|c: char| c.is_ascii_alphanumeric())
        && b.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !b.contains("..")
}

/// Anonymous GetObject on the bucket: as configured, else only for LobeChat v1, which
/// builds public file URLs (S3_PUBLIC_DOMAIN/BUCKET/KEY); v2 presigns every read
/// (S3_SET_ACL=0), so by default the bucket is private.
fn public_read(ctx: &PresetCtx) -> bool {
    use crate::stack::lobechat::env::Edition;
    ctx.section.public_read.unwrap_or_else(|| {
        ctx.find_preset(Preset::Lobechat)
            .is_some_and(|(_, s)| Edition::parse(s, "") == Ok(Edition::V1))
    })
}

/// The S3 port and the console port (`ports.console`, else port + 1).
fn ports(ctx: &PresetCtx, issues: &mut Vec<Issue>) -> (u16, u16) {
    let port = ctx.section.port.unwrap_or(DEFAULT_PORT);
    let console = match ctx.section.ports.get("console") {
        Some(p) => *p,
        None if port < u16::MAX => port + 1,
        None => {
            issues.push(Issue::new(
                format!("{}.port", ctx.key),
                "leave room for the console on port + 1, or set ports.console",
            ));
            port
        }
    };
    (port, console)
}

/// The bucket name: valid for S3 and not hiding one of LobeChat's own paths.
fn bucket(ctx: &PresetCtx, issues: &mut Vec<Issue>) -> String {
    let bucket = ctx
        .section
        .bucket
        .clone()
        .unwrap_or_else(|| DEFAULT_BUCKET.into());
    if !valid_bucket(&bucket) {
        issues.push(Issue::new(
            format!("{}.bucket", ctx.key),
            format!("{bucket:?} is not a valid S3 bucket name: use 3-63 of a-z, 0-9, '-', '.', starting and ending with a letter or digit"),
        ));
    }
    if APP_PATHS.contains(&bucket.as_str()) {
        issues.push(Issue::new(
            format!("{}.bucket", ctx.key),
            format!("{bucket:?} would shadow LobeChat's own /{bucket} pages on the app host (the bucket is served at /BUCKET there); pick another name, e.g. \"lobe\""),
        ));
    }
    bucket
}

/// The store's own unit: the flavor's command and env, natively or in a container.
fn store_unit(ctx: &PresetCtx, flavor: Flavor, port: u16, console_port: u16) -> Unit {
    let s = ctx.section;
    let podman = crate::stack::common::uses_podman(ctx.cfg, s);
    let host_data = ctx.stack.data_dir.join("objects");
    let container_data = PathBuf::from("/data");
    let origin = app_origin(ctx.cfg);
    let program = s
        .binary
        .as_ref()
        .map(|b| program_path(ctx.base_dir, b))
        .unwrap_or_else(|| PathBuf::from(flavor.preset()));
    let program = program.to_string_lossy().into_owned();
    let input = LaunchInput {
        program: &program,
        podman,
        port,
        console_port,
        data_dir: if podman { &container_data } else { &host_data },
        app_origin: origin.as_deref(),
    };
    let launch = match flavor {
        Flavor::RustFs => rustfs::launch(&input),
        Flavor::Minio => minio::launch(&input),
    };
    let mut u = blank_unit(ctx.name, &ctx.key, &format!("preset {}", flavor.preset()));
    u.exec = launch.exec;
    u.env = launch.env;
    u.port = Some(port);
    u.ports.insert("console".into(), console_port);
    if podman {
        u.runtime = Runtime::Podman(PodmanSpec {
            image: s
                .image
                .clone()
                .unwrap_or_else(|| launch.default_image.to_string()),
            volumes: vec![format!(
                "{}:{}",
                host_data.display(),
                container_data.display()
            )],
            init: true,
            gpu_devices: false,
            caps: launch.caps.clone(),
            image_user: launch.image_user,
        });
    }
    u.health = Some(Health {
        probe: Probe::Http {
            url: format!("http://127.0.0.1:{port}{}", launch.health_path),
            expect: Some(200),
        },
        interval: Duration::from_secs(2),
        timeout: Duration::from_secs(2),
        retries: 3,
        start_period: Duration::from_secs(60),
    });
    u.stop_signal = nix::sys::signal::Signal::SIGTERM;
    u.stop_timeout = Duration::from_secs(30);
    u.prepare = Some(TaskSpec::ObjectsDataDir(datadir::DataDirSpec {
        dir: host_data,
        image_owner: if podman { launch.image_user } else { None },
    }));
    u
}

/// The root key pair: the store, objects-init and LobeChat use it.
fn root_secrets(ctx: &PresetCtx, flavor: Flavor, init_name: &str) -> BTreeMap<String, SecretSpec> {
    let mut consumers = vec![ctx.name.to_string(), init_name.to_string()];
    if let Some((lobe, _)) = ctx.find_preset(Preset::Lobechat) {
        consumers.push(lobe.to_string());
    }
    let spec = |bytes, consumers, what: &str| SecretSpec {
        kind: SecretKind::Random { bytes },
        owner: None,
        consumers,
        rotate: None,
        description: format!("{} root {what}", flavor.preset()),
    };
    BTreeMap::from([
        (
            ROOT_USER_SECRET.to_string(),
            spec(12, consumers.clone(), "access key (also LobeChat's S3 key)"),
        ),
        (
            ROOT_PASSWORD_SECRET.to_string(),
            spec(30, consumers, "secret key (also LobeChat's S3 secret)"),
        ),
    ])
}

/// `https://APP_HOST/BUCKET/…` to the store, or a warning saying why there is none.
fn bucket_route(ctx: &PresetCtx, bucket: &str, port: u16, e: &mut Expansion) {
    match (app_origin(ctx.cfg), app_host(ctx.cfg)) {
        (Some(_), Some(host)) if ctx.cfg.proxy.is_some() => e.routes.push((
            host,
            Route {
                path: format!("/{bucket}"),
                action: RouteAction::Unit {
                    unit: ctx.name.to_string(),
                    port,
                },
                max_body: Some(BUCKET_ROUTE_MAX_BODY),
                uploads: true,
            },
        )),
        (None, _) => e.warnings.push(format!(
            "{}: no public app host (set [stack].domain or services.<lobechat>.host): the bucket is not served through the proxy, so browsers cannot load uploads",
            ctx.key
        )),
        _ => e.warnings.push(format!(
            "{}: no [proxy] section: the bucket is not served on the app origin, so browsers cannot load uploads",
            ctx.key
        )),
    }
}

/// Expands `preset = "rustfs"` or `"minio"`.
pub fn expand(flavor: Flavor, ctx: &PresetCtx) -> Expansion {
    let mut e = Expansion::default();
    let (port, console_port) = ports(ctx, &mut e.issues);
    let bucket = bucket(ctx, &mut e.issues);
    e.units.push(store_unit(ctx, flavor, port, console_port));
    let init_name = init_unit_name(ctx.name);
    e.units.push(init::unit(
        &init_name,
        ctx,
        init::InitSpec {
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: bucket.clone(),
            app_origin: app_origin(ctx.cfg),
            store: ctx.name.to_string(),
            flavor,
            public_read: public_read(ctx),
        },
    ));
    e.secrets = root_secrets(ctx, flavor, &init_name);
    e.warnings.push(format!(
        "{}: LobeChat uses the {} root key (S3_ACCESS_KEY_ID = secret {ROOT_USER_SECRET}): a dedicated access key needs the store's admin API, which this build does not drive",
        ctx.key,
        flavor.preset()
    ));
    bucket_route(ctx, &bucket, port, &mut e);
    e
}

/// A bare name stays a PATH lookup; a relative path is relative to the config's folder.
fn program_path(base: &Path, b: &Path) -> PathBuf {
    if b.is_absolute() || b.components().count() == 1 {
        b.to_path_buf()
    } else {
        base.join(b)
    }
}

#[cfg(test)]
mod caps_tests {
    use super::*;

    /// Security issue point 12: no capability and a non-root user in both images.
    #[test]
    fn flavors_capabilities() {
        let input = LaunchInput {
            program: "x",
            podman: true,
            port: 9000,
            console_port: 9001,
            data_dir: Path::new("/data"),
            app_origin: None,
        };
        assert_eq!(minio::launch(&input).caps, Capabilities::none());
        assert_eq!(rustfs::launch(&input).caps, Capabilities::none());
        assert_eq!(minio::launch(&input).image_user, Some((10001, 10001)));
        assert_eq!(rustfs::launch(&input).image_user, Some((10001, 10001)));
    }
}
