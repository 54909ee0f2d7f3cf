//! Preset "logto": the OIDC provider LobeChat signs in with.
//!
//! Units: `NAME-seed` (oneshot `db seed --swe`, creates Logto's tables once),
//! `NAME-provision` (oneshot, LobeChat's OIDC client and air-gap policy, see
//! `provision`), and `NAME` itself (`node .` in `packages/core`, or the image's own
//! `npm run start`). Env follows DESIGN §2/§7: `ENDPOINT` is the public
//! `https://auth.DOMAIN` origin, `ADMIN_ENDPOINT` a different origin, `TRUST_PROXY_HEADER=1`.
//!
//! Logto has no listen-address setting: it binds PORT and ADMIN_PORT on every interface
//! (packages/core/src/app/init.ts), natively and with podman's host network alike; the
//! `loopback` preload keeps both on 127.0.0.1 (see there why), so only the proxy reaches them.
//!
//! The console's account is made by provisioning (`admin`): user `admin`, password in
//! `prometheus-stack secrets show logto-admin-password`; sign-up on the console is closed.
//! The console is not public by default: open it through a tunnel (`ssh -L
//! 3002:localhost:3002 HOST`, then `http://localhost:3002/console`), or set `admin_host =
//! "console.DOMAIN"` (with a `[[proxy.site]]` for it under `tls = "files"`) and open
//! `https://console.DOMAIN/console`. LobeChat users sign up on `https://auth.DOMAIN`
//! through LobeChat's "Sign in" (Logto's default sign-in experience).

pub mod admin;
mod env;
pub mod loopback;
pub mod origins;
pub mod peers;
pub mod provision;
mod seed;
pub mod tenant_db;

use crate::config::model::{ConfigFile, Preset, ServiceSection};
use crate::config::Issue;
use crate::plan::{
    blank_unit, Capabilities, Condition, Dependency, EnvValue, Exec, Health, PodmanSpec, Probe,
    Route, RouteAction, Runtime, SecretKind, SecretSpec, UnitKind,
};
use crate::stack::common::{absolute, https_origin, node_program, uses_podman};
use crate::stack::{Expansion, PresetCtx};
use std::path::PathBuf;
use std::time::Duration;

/// Logto's public (OIDC, sign-in pages) port.
pub const DEFAULT_PORT: u16 = 3001;
/// Logto's admin console port.
pub const DEFAULT_ADMIN_PORT: u16 = 3002;
/// `--user` of Logto's containers when the unit sets none: `node`, group root.
pub const LOGTO_IMAGE_USER: (u32, u32) = (1000, 0);
/// Client id of LobeChat's application in Logto: fixed, so a lost secrets folder can
/// never make provisioning create a second application.
pub const LOBECHAT_CLIENT_ID: &str = "prometheus-lobechat";
/// Secret holding LobeChat's OIDC client secret (generated here, written into Logto).
pub const LOBECHAT_CLIENT_SECRET: &str = "lobechat-oidc-client-secret";

/// Logto's public origin, `https://auth.DOMAIN[:PORT]` (its `ENDPOINT`).
pub fn endpoint(cfg: &ConfigFile, section: &ServiceSection, key: &str) -> Result<String, Issue> {
    origins::public_origin(cfg, section, "auth", key)
}

/// The OIDC issuer LobeChat must be given: `ENDPOINT/oidc`.
pub fn issuer(cfg: &ConfigFile, section: &ServiceSection, key: &str) -> Result<String, Issue> {
    endpoint(cfg, section, key).map(|e| format!("{e}/oidc"))
}

/// A helper oneshot `NAME-SUFFIX` of the logto unit `ctx.name`, retried on failure.
pub(crate) fn helper_oneshot(ctx: &PresetCtx, suffix: &str, what: &str) -> crate::plan::Unit {
    let mut u = blank_unit(
        &format!("{}-{suffix}", ctx.name),
        &ctx.key,
        &format!("preset logto ({what})"),
    );
    u.kind = UnitKind::Oneshot;
    // Transient causes (the database still starting) heal; the crash-loop limit stops the rest.
    u.restart = crate::plan::RestartPolicy::OnFailure;
    u
}

/// A podman spec for a helper unit sharing the main unit's image.
pub(crate) fn podman_helper(image: &str) -> Runtime {
    Runtime::Podman(PodmanSpec {
        image: image.to_string(),
        volumes: Vec::new(),
        init: true,
        gpu_devices: false,
        // A node app on ports above 1024: no capability.
        caps: Capabilities::none(),
        // Not root: the image's `node` user (uid 1000 in node:22-alpine) with group 0, the
        // group its Dockerfile makes packages/cli/alteration-scripts writable for.
        image_user: Some(LOGTO_IMAGE_USER),
    })
}

/// An operator's `env.KEY` as an env value, `${secret:NAME}` kept as a secret reference.
pub(crate) fn env_override(section: &ServiceSection, key: &str) -> Option<EnvValue> {
    let v = section.env.get(key)?;
    let mut out = EnvValue::default();
    let mut rest = v.as_str();
    while let Some(start) = rest.find("${secret:") {
        let after = &rest[start + 9..];
        let Some(end) = after.find('}') else { break };
        if start > 0 {
            out = out.push_text(&rest[..start]);
        }
        out = out.push_secret(&after[..end], crate::plan::Encoding::Raw);
        rest = &after[end + 1..];
    }
    if !rest.is_empty() || out.0.is_empty() {
        out = out.push_text(rest);
    }
    Some(out)
}

/// Ports of the logto unit: (public, admin).
pub fn ports(section: &ServiceSection) -> (u16, u16) {
    (
        section.port.unwrap_or(DEFAULT_PORT),
        section
            .ports
            .get("admin")
            .copied()
            .unwrap_or(DEFAULT_ADMIN_PORT),
    )
}

/// The console's public host (`admin_host`), which must differ from the auth host.
fn admin_public(ctx: &PresetCtx, auth_host: &str, issues: &mut Vec<Issue>) -> Option<String> {
    let key = ctx.key.as_str();
    let h = ctx.section.admin_host.as_ref()?;
    let sec = ServiceSection {
        host: Some(h.clone()),
        ..Default::default()
    };
    match origins::public_host(ctx.cfg, &sec, "admin", &format!("{key}.admin_host")) {
        Ok(h) if h == auth_host => {
            issues.push(Issue::new(
                format!("{key}.admin_host"),
                "must differ from the auth host: Logto rejects the console on the same origin (aud check_failed)",
            ));
            None
        }
        Ok(h) => Some(h),
        Err(mut i) => {
            i.key = format!("{key}.admin_host");
            issues.push(i);
            None
        }
    }
}

/// Where Logto and its helpers find the release: None in a container (the image has it).
fn release_dir(ctx: &PresetCtx, podman: bool) -> Result<Option<PathBuf>, Issue> {
    match (&ctx.section.release_dir, podman) {
        (Some(d), _) => Ok(Some(absolute(ctx.base_dir, d))),
        (None, true) => Ok(None),
        (None, false) => Err(Issue::new(
            format!("{}.release_dir", ctx.key),
            "missing: the unpacked Logto release (logto.tar.gz) for runtime = \"process\", or set image = \"ghcr.io/logto-io/logto:TAG\" for podman",
        )),
    }
}

/// Logto's origins and ports, as resolved from the section.
struct Origins {
    auth_host: String,
    admin_public: Option<String>,
    /// `ENDPOINT`.
    endpoint: String,
    /// `ADMIN_ENDPOINT`.
    admin_endpoint: String,
    port: u16,
    admin_port: u16,
}

fn resolve_origins(ctx: &PresetCtx, issues: &mut Vec<Issue>) -> Result<Origins, Issue> {
    let (cfg, s, key) = (ctx.cfg, ctx.section, ctx.key.as_str());
    let auth_host = origins::public_host(cfg, s, "auth", key)?;
    let (port, admin_port) = ports(s);
    if port == admin_port {
        issues.push(Issue::new(
            format!("{key}.ports.admin"),
            format!("the admin port must differ from port = {port} (Logto serves two origins)"),
        ));
    }
    let admin_public = admin_public(ctx, &auth_host, issues);
    // Unexposed console: Logto's own default origin, which is also what an SSH tunnel
    // (`ssh -L 3002:localhost:3002`) puts in the browser, and a secure context for WebCrypto.
    let admin_endpoint = match &admin_public {
        Some(h) => https_origin(cfg, h),
        None => format!("http://localhost:{admin_port}"),
    };
    Ok(Origins {
        endpoint: https_origin(cfg, &auth_host),
        auth_host,
        admin_public,
        admin_endpoint,
        port,
        admin_port,
    })
}

/// The server unit: `node .` in packages/core, or the image's `npm run start`.
fn main_unit(
    ctx: &PresetCtx,
    o: &Origins,
    db_url: &EnvValue,
    release_dir: Option<PathBuf>,
    after: [&str; 2],
) -> crate::plan::Unit {
    let mut u = blank_unit(ctx.name, &ctx.key, "preset logto");
    u.kind = UnitKind::Longrun;
    u.env = env::server_env(o, db_url);
    u.port = Some(o.port);
    u.ports.insert("admin".into(), o.admin_port);
    match release_dir {
        // The image's ENTRYPOINT is `npm run` with CMD `start`.
        None => {
            u.exec = Exec::Command(Vec::new());
            // The section's image replaces this one; the capabilities stay.
            u.runtime = podman_helper(ctx.section.image.as_deref().unwrap_or_default());
        }
        Some(dir) => {
            // What `npm start` does, without needing npm: `cd packages/core && node .`.
            u.workdir = Some(dir.join("packages").join("core"));
            u.exec = Exec::Command(vec![node_program(ctx.section), ".".into()]);
        }
    }
    u.health = Some(Health {
        probe: Probe::Http {
            url: format!("http://127.0.0.1:{}/api/status", o.port),
            expect: Some(204),
        },
        interval: Duration::from_secs(2),
        timeout: Duration::from_secs(2),
        retries: 3,
        start_period: Duration::from_secs(120),
    });
    // Seed first; and Logto caches clients and the sign-in experience: provision before it starts.
    u.depends_on = after
        .iter()
        .map(|unit| Dependency {
            unit: unit.to_string(),
            condition: Condition::Completed,
        })
        .collect();
    u
}

/// The auth host to Logto; with `admin_host`, the console's host and `/admin` redirecting there.
fn routes(name: &str, o: &Origins) -> Vec<(String, Route)> {
    let route = |path: &str, action| Route {
        path: path.into(),
        action,
        max_body: None,
        uploads: false,
    };
    let to = |port| RouteAction::Unit {
        unit: name.into(),
        port,
    };
    let mut out = vec![(o.auth_host.clone(), route("/", to(o.port)))];
    if let Some(h) = &o.admin_public {
        out.push((h.clone(), route("/", to(o.admin_port))));
        let console = RouteAction::Redirect(format!("{}/console", o.admin_endpoint));
        out.push((o.auth_host.clone(), route("/admin", console)));
    }
    out
}

/// Expands `preset = "logto"`.
pub fn expand(ctx: &PresetCtx) -> Expansion {
    let mut e = Expansion::default();
    let (s, key) = (ctx.section, ctx.key.as_str());
    let o = match resolve_origins(ctx, &mut e.issues) {
        Ok(o) => o,
        Err(i) => {
            e.issues.push(i);
            return e;
        }
    };
    let Some(db_url) = env_override(s, "DB_URL").or_else(|| peers::database_url(ctx, "logto"))
    else {
        e.issues.push(Issue::new(
            format!("{key}.env.DB_URL"),
            "missing: add a unit with preset = \"postgres\" or set env.DB_URL = \"postgres://…/logto\"",
        ));
        return e;
    };
    e.issues.extend(tenant_db::check_section(s, key));
    e.issues.extend(loopback::check_section(s, key));
    let podman = uses_podman(ctx.cfg, s);
    let release_dir = match release_dir(ctx, podman) {
        Ok(d) => d,
        Err(i) => {
            e.issues.push(i);
            return e;
        }
    };
    let node = node_program(s);
    let seed_unit = seed::unit(ctx, &db_url, podman, &node, release_dir.as_deref());
    let lobechat = ctx.find_preset(Preset::Lobechat);
    let (provision, provision_task) =
        provision::unit(ctx, &db_url, lobechat.map(|(n, _)| n), &seed_unit.name);
    let main_dir = if podman { None } else { release_dir };
    let u = main_unit(
        ctx,
        &o,
        &db_url,
        main_dir,
        [&seed_unit.name, &provision.name],
    );
    if let Some((lc_name, _)) = lobechat {
        e.secrets.insert(
            LOBECHAT_CLIENT_SECRET.into(),
            SecretSpec {
                kind: SecretKind::Random { bytes: 32 },
                owner: None,
                consumers: vec![lc_name.to_string()],
                // Rotation = provisioning again: it writes the new value into Logto.
                rotate: Some(provision_task.clone()),
                description: format!(
                    "client secret of LobeChat's OIDC application {LOBECHAT_CLIENT_ID:?} in Logto"
                ),
            },
        );
    }
    e.secrets.insert(
        admin::ADMIN_PASSWORD_SECRET.into(),
        SecretSpec {
            kind: admin::password_kind(),
            owner: None,
            // Logto reads the hash at each sign-in: nothing to restart.
            consumers: Vec::new(),
            rotate: Some(provision_task.clone()),
            description: format!(
                "password of Logto's admin-console account {:?} (`secrets show`)",
                admin::ADMIN_USERNAME
            ),
        },
    );
    e.routes = routes(ctx.name, &o);
    e.units.push(seed_unit);
    e.units.push(provision);
    e.units.push(u);
    e
}

#[cfg(test)]
mod caps_tests {
    /// Security issue point 12: Logto's containers (server and helpers) keep no capability.
    #[test]
    fn helpers_keep_no_capability() {
        let crate::plan::Runtime::Podman(spec) = super::podman_helper("i") else {
            panic!("not podman")
        };
        assert_eq!(spec.caps, crate::plan::Capabilities::none());
    }
}
