//! Preset "logto": the OIDC provider LobeChat signs in with.
//!
//! Units: `NAME-seed` (oneshot `db seed --swe`, creates Logto's tables once),
//! `NAME-provision` (oneshot, LobeChat's OIDC client and air-gap policy, see
//! `provision`), and `NAME` itself (`node .` in `packages/core`, or the image's own
//! `npm run start`). Env follows DESIGN §2/§7: `ENDPOINT` is the public
//! `https://auth.DOMAIN` origin, `ADMIN_ENDPOINT` a different origin, `TRUST_PROXY_HEADER=1`.
//!
//! Logto has no listen-address setting: it binds PORT and ADMIN_PORT on every interface
//! (packages/core/src/app/init.ts), natively and with podman's host network alike. Only
//! the proxy should reach them: firewall both ports (or run Logto in a network namespace).
//!
//! What remains for the operator after `run`: the first Logto admin account. The console
//! is not public by default: open it through a tunnel (`ssh -L 3002:localhost:3002 HOST`,
//! then `http://localhost:3002/console`), or set `admin_host = "console.DOMAIN"` (with a
//! `[[proxy.site]]` for it under `tls = "files"`) and open `https://console.DOMAIN/console`;
//! the first visitor creates the admin account. LobeChat users sign up on
//! `https://auth.DOMAIN` through LobeChat's "Sign in" (Logto's default sign-in experience).

pub mod origins;
pub mod peers;
pub mod provision;
mod seed;
pub mod tenant_db;

use crate::config::model::{ConfigFile, RuntimeName, ServiceSection};
use crate::config::Issue;
use crate::plan::{
    blank_unit, Condition, Dependency, EnvValue, Exec, Health, PodmanSpec, Probe, Route,
    RouteAction, Runtime, SecretKind, SecretSpec, UnitKind,
};
use crate::stack::{Expansion, PresetCtx};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Logto's public (OIDC, sign-in pages) port.
pub const DEFAULT_PORT: u16 = 3001;
/// Logto's admin console port.
pub const DEFAULT_ADMIN_PORT: u16 = 3002;
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

/// Whether a preset section runs in a container (same rule as the plan builder).
pub(crate) fn uses_podman(cfg: &ConfigFile, section: &ServiceSection) -> bool {
    let rt = section.runtime.unwrap_or(cfg.stack.runtime);
    (rt == RuntimeName::Podman || section.image.is_some())
        && section.runtime != Some(RuntimeName::Process)
}

/// The `node` to run a native release with: the section's `node` key, else from PATH.
pub(crate) fn node_program(section: &ServiceSection) -> String {
    section
        .node
        .clone()
        .unwrap_or_else(|| PathBuf::from("node"))
        .display()
        .to_string()
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

/// Expands `preset = "logto"`.
pub fn expand(ctx: &PresetCtx) -> Expansion {
    let mut e = Expansion::default();
    let (cfg, s, name, key) = (ctx.cfg, ctx.section, ctx.name, ctx.key.as_str());
    let auth_host = match origins::public_host(cfg, s, "auth", key) {
        Ok(h) => h,
        Err(i) => {
            e.issues.push(i);
            return e;
        }
    };
    let endpoint = origins::https_origin(cfg, &auth_host);
    let (port, admin_port) = ports(s);
    if port == admin_port {
        e.issues.push(Issue::new(
            format!("{key}.ports.admin"),
            format!("the admin port must differ from port = {port} (Logto serves two origins)"),
        ));
    }
    let admin_public = match &s.admin_host {
        Some(h) => {
            let sec = ServiceSection {
                host: Some(h.clone()),
                ..Default::default()
            };
            match origins::public_host(cfg, &sec, "admin", &format!("{key}.admin_host")) {
                Ok(h) if h == auth_host => {
                    e.issues.push(Issue::new(
                        format!("{key}.admin_host"),
                        "must differ from the auth host: Logto rejects the console on the same origin (aud check_failed)",
                    ));
                    None
                }
                Ok(h) => Some(h),
                Err(mut i) => {
                    i.key = format!("{key}.admin_host");
                    e.issues.push(i);
                    None
                }
            }
        }
        None => None,
    };
    // Unexposed console: Logto's own default origin, which is also what an SSH tunnel
    // (`ssh -L 3002:localhost:3002`) puts in the browser, and a secure context for WebCrypto.
    let admin_endpoint = match &admin_public {
        Some(h) => origins::https_origin(cfg, h),
        None => format!("http://localhost:{admin_port}"),
    };

    let db_url = match env_override(s, "DB_URL").or_else(|| peers::database_url(ctx, "logto")) {
        Some(v) => v,
        None => {
            e.issues.push(Issue::new(
                format!("{key}.env.DB_URL"),
                "missing: add a unit with preset = \"postgres\" or set env.DB_URL = \"postgres://…/logto\"",
            ));
            return e;
        }
    };
    e.issues.extend(tenant_db::check_section(s, key));
    let podman = uses_podman(cfg, s);
    let node = node_program(s);
    let release_dir = match (&s.release_dir, podman) {
        (Some(d), _) => Some(absolute(ctx.base_dir, d)),
        (None, true) => None,
        (None, false) => {
            e.issues.push(Issue::new(
                format!("{key}.release_dir"),
                "missing: the unpacked Logto release (logto.tar.gz) for runtime = \"process\", or set image = \"ghcr.io/logto-io/logto:TAG\" for podman",
            ));
            return e;
        }
    };

    let mut env = BTreeMap::new();
    env.insert("DB_URL".to_string(), db_url.clone());
    env.insert("ENDPOINT".into(), EnvValue::text(&endpoint));
    env.insert("ADMIN_ENDPOINT".into(), EnvValue::text(&admin_endpoint));
    env.insert("TRUST_PROXY_HEADER".into(), EnvValue::text("1"));
    env.insert("PORT".into(), EnvValue::text(port.to_string()));
    env.insert("ADMIN_PORT".into(), EnvValue::text(admin_port.to_string()));
    env.insert("NODE_ENV".into(), EnvValue::text("production"));

    let seed_unit = seed::unit(ctx, &db_url, podman, &node, release_dir.as_deref());
    let lobechat = ctx.find_preset("lobechat");
    let (provision, provision_task) =
        provision::unit(ctx, &db_url, lobechat.map(|(n, _)| n), &seed_unit.name);

    let mut u = blank_unit(name, key, "preset logto");
    u.kind = UnitKind::Longrun;
    u.env = env;
    u.port = Some(port);
    u.ports.insert("admin".into(), admin_port);
    if podman {
        // The image's ENTRYPOINT is `npm run` with CMD `start`.
        u.exec = Exec::Command(Vec::new());
    } else {
        // What `npm start` does, without needing npm: `cd packages/core && node .`.
        let dir = release_dir.clone().expect("native has a release dir");
        u.workdir = Some(dir.join("packages").join("core"));
        u.exec = Exec::Command(vec![node, ".".into()]);
    }
    u.health = Some(Health {
        probe: Probe::Http {
            url: format!("http://127.0.0.1:{port}/api/status"),
            expect: Some(204),
        },
        interval: Duration::from_secs(2),
        timeout: Duration::from_secs(2),
        retries: 3,
        start_period: Duration::from_secs(120),
    });
    u.depends_on = vec![
        Dependency {
            unit: seed_unit.name.clone(),
            condition: Condition::Completed,
        },
        // Logto caches clients and the sign-in experience: provision before it starts.
        Dependency {
            unit: provision.name.clone(),
            condition: Condition::Completed,
        },
    ];

    if let Some((lc_name, _)) = lobechat {
        e.secrets.insert(
            LOBECHAT_CLIENT_SECRET.into(),
            SecretSpec {
                kind: SecretKind::Random { bytes: 32 },
                owner: None,
                consumers: vec![lc_name.to_string()],
                // Rotation = provisioning again: it writes the new value into Logto.
                rotate: Some(provision_task),
                description: format!(
                    "client secret of LobeChat's OIDC application {LOBECHAT_CLIENT_ID:?} in Logto"
                ),
            },
        );
    }

    e.routes.push((
        auth_host.clone(),
        Route {
            path: "/".into(),
            action: RouteAction::Unit {
                unit: name.into(),
                port,
            },
            max_body: None,
            uploads: false,
        },
    ));
    if let Some(h) = &admin_public {
        e.routes.push((
            h.clone(),
            Route {
                path: "/".into(),
                action: RouteAction::Unit {
                    unit: name.into(),
                    port: admin_port,
                },
                max_body: None,
                uploads: false,
            },
        ));
        e.routes.push((
            auth_host,
            Route {
                path: "/admin".into(),
                action: RouteAction::Redirect(format!("{admin_endpoint}/console")),
                max_body: None,
                uploads: false,
            },
        ));
    }
    e.units.push(seed_unit);
    e.units.push(provision);
    e.units.push(u);
    e
}

/// Relative paths in the file are relative to the file's folder.
pub(crate) fn absolute(base: &std::path::Path, p: &std::path::Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p).components().collect()
    }
}
