//! Preset "lobechat": the chat application, wired to Logto, PostgreSQL and the S3 store.
//!
//! Units: `NAME-migrate` (native only: `node docker.cjs`, drizzle migrations from
//! `migrations/`) and `NAME` (`node server.js` in the Next.js standalone folder, or the
//! image's own `startServer.js`, which migrates by itself). Env: see `env`.

pub mod env;
pub mod jwks;

use crate::config::model::{ConfigFile, Preset, ServiceSection};
use crate::config::Issue;
use crate::plan::{
    blank_unit, Capabilities, Condition, Dependency, EnvValue, Exec, Health, PodmanSpec, Probe,
    RestartPolicy, Route, RouteAction, Runtime, SecretKind, SecretSpec, Unit, UnitKind,
};
use crate::stack::common::{absolute, ca_bundle, https_origin, node_program, uses_podman};
use crate::stack::logto::{self, env_override, origins, peers};
use crate::stack::{Expansion, PresetCtx};
use env::{Edition, Inputs, Sso};
use std::collections::BTreeMap;
use std::time::Duration;

/// LobeChat's port (the image's `PORT`).
pub const DEFAULT_PORT: u16 = 3210;
/// Secret behind `KEY_VAULTS_SECRET` (encrypts users' provider keys in the database).
pub const KEY_VAULTS_SECRET: &str = "lobechat-key-vaults-secret";
/// Secret behind `AUTH_SECRET` (v2) / `NEXT_AUTH_SECRET` (v1).
pub const AUTH_SECRET: &str = "lobechat-auth-secret";

/// LobeChat's public URL, `https://lobe.DOMAIN[:PORT]`, no trailing slash.
pub fn app_url(cfg: &ConfigFile, section: &ServiceSection, key: &str) -> Result<String, Issue> {
    origins::public_origin(cfg, section, "lobe", key)
}

/// Logto as LobeChat's SSO provider, when the config has a logto unit.
fn sso(ctx: &PresetCtx, warnings: &mut Vec<String>) -> Option<Sso> {
    let Some((_, ls)) = ctx.find_preset(Preset::Logto) else {
        warnings.push(format!(
            "{}: no unit with preset = \"logto\": LobeChat gets no SSO provider (set AUTH_* in env yourself)",
            ctx.key
        ));
        return None;
    };
    // The logto preset reports its own host problem.
    let issuer = logto::issuer(ctx.cfg, ls, "services.logto").ok()?;
    Some(Sso {
        client_id: logto::LOBECHAT_CLIENT_ID.into(),
        client_secret: EnvValue::secret(logto::LOBECHAT_CLIENT_SECRET),
        issuer,
    })
}

/// What LobeChat's env is made from: its URL, its peers' URLs and keys, the secrets.
fn inputs(ctx: &PresetCtx, app_url: &str, e: &mut Expansion) -> Inputs {
    let (s, key) = (ctx.section, ctx.key.as_str());
    let database_url =
        env_override(s, "DATABASE_URL").or_else(|| peers::database_url(ctx, "lobechat"));
    if database_url.is_none() {
        e.issues.push(Issue::new(
            format!("{key}.env.DATABASE_URL"),
            "missing: add a unit with preset = \"postgres\" or set env.DATABASE_URL = \"postgres://…/lobechat\"",
        ));
    }
    let sso = sso(ctx, &mut e.warnings);
    let s3 = peers::lobechat_s3_env(ctx).unwrap_or_default();
    if s3.is_empty() && !s.env.keys().any(|k| k.starts_with("S3_")) {
        e.warnings.push(format!(
            "{key}: no object-store preset (rustfs, minio) and no S3_* in env: file uploads will not work"
        ));
    }
    Inputs {
        app_url: app_url.to_string(),
        port: s.port.unwrap_or(DEFAULT_PORT),
        database_url,
        sso,
        s3,
        ca_bundle: ca_bundle(ctx.cfg, ctx.stack),
        key_vaults_secret: KEY_VAULTS_SECRET.into(),
        auth_secret: AUTH_SECRET.into(),
        jwks_secret: jwks::SECRET.into(),
    }
}

/// Provisioning done by the peers (database, bucket, OIDC client) and Logto healthy.
fn peer_dependencies(ctx: &PresetCtx) -> Vec<Dependency> {
    let mut deps: Vec<Dependency> = Vec::new();
    deps.extend(peers::postgres_init(ctx));
    deps.extend(peers::objects_init(ctx));
    if let Some((ln, _)) = ctx.find_preset(Preset::Logto) {
        deps.push(Dependency {
            unit: format!("{ln}-provision"),
            condition: Condition::Completed,
        });
        deps.push(Dependency {
            unit: ln.to_string(),
            condition: Condition::Healthy,
        });
    }
    deps
}

/// `NAME-migrate` (native only): drizzle migrations with the server's database env.
fn migrate_unit(ctx: &PresetCtx, dir: &std::path::Path, server: &Unit) -> Unit {
    let mut m = blank_unit(
        &format!("{}-migrate", ctx.name),
        &ctx.key,
        "preset lobechat (database migrations)",
    );
    m.kind = UnitKind::Oneshot;
    m.restart = RestartPolicy::OnFailure;
    m.workdir = Some(dir.to_path_buf());
    m.exec = Exec::Command(vec![node_program(ctx.section), "docker.cjs".into()]);
    for k in [
        "DATABASE_URL",
        "DATABASE_DRIVER",
        "NODE_ENV",
        "NODE_EXTRA_CA_CERTS",
    ] {
        if let Some(v) = server.env.get(k) {
            m.env.insert(k.into(), v.clone());
        }
    }
    m.depends_on = peers::postgres_init(ctx).into_iter().collect();
    m
}

/// In a container: the image's startServer.js (it migrates by itself), and the CA
/// certificate alone mounted read-only at the host path NODE_EXTRA_CA_CERTS names (the
/// pki folder also holds the CA's private key and the sites' keys: never mounted).
fn podman_server(u: &mut Unit, s: &ServiceSection, ca_bundle: Option<&std::path::Path>) {
    u.exec = Exec::Command(Vec::new());
    let volumes = ca_bundle
        .map(|ca| {
            let ca = ca.display().to_string();
            format!("{ca}:{ca}:ro")
        })
        .into_iter()
        .collect();
    u.runtime = Runtime::Podman(PodmanSpec {
        image: s.image.clone().unwrap_or_default(),
        volumes,
        init: true,
        gpu_devices: false,
        // A node app run as the image's user `nextjs`, on a port above 1024.
        caps: Capabilities::none(),
        image_user: None,
    });
}

/// KEY_VAULTS_SECRET, AUTH_SECRET and (v2) the JWKS key.
fn secrets(name: &str, edition: Edition) -> BTreeMap<String, SecretSpec> {
    let mut out = BTreeMap::new();
    for (secret, what) in [
        (
            KEY_VAULTS_SECRET,
            "LobeChat KEY_VAULTS_SECRET: encrypts users' API keys in the database",
        ),
        (AUTH_SECRET, "LobeChat AUTH_SECRET: signs login sessions"),
    ] {
        out.insert(
            secret.into(),
            SecretSpec {
                kind: SecretKind::Random { bytes: 32 },
                owner: None,
                consumers: vec![name.to_string()],
                rotate: None,
                description: what.into(),
            },
        );
    }
    if edition == Edition::V2 {
        out.insert(jwks::SECRET.into(), jwks::spec(name));
    }
    out
}

/// Expands `preset = "lobechat"`.
pub fn expand(ctx: &PresetCtx) -> Expansion {
    let mut e = Expansion::default();
    let (cfg, s, name, key) = (ctx.cfg, ctx.section, ctx.name, ctx.key.as_str());
    let edition = match Edition::parse(s, key) {
        Ok(ed) => ed,
        Err(i) => {
            e.issues.push(i);
            return e;
        }
    };
    e.issues.extend(env::check_overrides(edition, s, key));
    let host = match origins::public_host(cfg, s, "lobe", key) {
        Ok(h) => h,
        Err(i) => {
            e.issues.push(i);
            return e;
        }
    };
    let inputs = inputs(ctx, &https_origin(cfg, &host), &mut e);
    let port = inputs.port;
    let mut deps = peer_dependencies(ctx);
    let mut u = blank_unit(name, key, "preset lobechat");
    u.kind = UnitKind::Longrun;
    u.env = env::build(edition, &inputs);
    u.port = Some(port);
    if uses_podman(cfg, s) {
        podman_server(&mut u, s, inputs.ca_bundle.as_deref());
    } else {
        let Some(dir) = s.release_dir.as_ref().map(|d| absolute(ctx.base_dir, d)) else {
            e.issues.push(Issue::new(
                format!("{key}.release_dir"),
                "missing: LobeChat's standalone folder (server.js, docker.cjs, migrations/) for runtime = \"process\", or set image = \"docker.io/lobehub/lobehub:TAG\" for podman",
            ));
            return e;
        };
        let m = migrate_unit(ctx, &dir, &u);
        deps.push(Dependency {
            unit: m.name.clone(),
            condition: Condition::Completed,
        });
        e.units.push(m);
        u.workdir = Some(dir);
        u.exec = Exec::Command(vec![node_program(s), "server.js".into()]);
    }
    u.depends_on = deps;
    u.health = Some(Health {
        probe: Probe::Http {
            url: format!("http://127.0.0.1:{port}/"),
            expect: None,
        },
        interval: Duration::from_secs(5),
        timeout: Duration::from_secs(5),
        retries: 3,
        start_period: Duration::from_secs(120),
    });
    e.units.push(u);
    e.secrets = secrets(name, edition);
    e.routes.push((
        host,
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
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Security issue point 7: the container gets `ca.crt`, never the pki folder.
    #[test]
    fn podman_mounts_only_the_ca_certificate() {
        let mut u = crate::plan::blank_unit("lobechat", "services.lobechat", "test");
        let s = ServiceSection {
            image: Some("docker.io/lobehub/lobehub:2.1.26".into()),
            ..Default::default()
        };
        podman_server(
            &mut u,
            &s,
            Some(std::path::Path::new("/var/lib/ps/pki/ca.crt")),
        );
        let Runtime::Podman(spec) = &u.runtime else {
            panic!("not podman: {:?}", u.runtime)
        };
        assert_eq!(
            spec.volumes,
            ["/var/lib/ps/pki/ca.crt:/var/lib/ps/pki/ca.crt:ro"]
        );
        assert!(spec.volumes.iter().all(|v| !v.contains(".key")));
        // Security issue point 12: no capability at all, with or without the CA.
        assert_eq!(spec.caps, Capabilities::none());
        podman_server(&mut u, &s, None);
        let Runtime::Podman(spec) = &u.runtime else {
            panic!("not podman: {:?}", u.runtime)
        };
        assert!(spec.volumes.is_empty());
        assert_eq!(spec.caps, Capabilities::none());
    }
}
