//! What the logto and lobechat presets put in the plan: proxy layout from the domain,
//! the console only on its own origin, dependencies, podman commands, config errors.

use prometheus_stack::config::load_str;
use prometheus_stack::plan::{
    build, BuildOptions, Condition, Exec, Plan, RouteAction, Runtime, SecretKind,
};

fn plan(body: &str) -> Result<Plan, String> {
    let text = format!(
        "[stack]\ndomain = \"example.test\"\ndata_dir = \"/var/lib/ps-test\"\n\n[proxy]\ntls = \"internal\"\n\n{body}"
    );
    let (cfg, src) = load_str("stack.toml", None, text).map_err(|e| e.to_string())?;
    build(&cfg, &src, BuildOptions { check_host: false }).map_err(|e| e.to_string())
}

const BOTH: &str = r#"
[services.logto]
preset = "logto"
release_dir = "/opt/logto"
env = { DB_URL = "postgres://logto:pw@127.0.0.1:5432/logto" }

[services.lobechat]
preset = "lobechat"
release_dir = "/opt/lobechat"
env = { DATABASE_URL = "postgres://lobechat:pw@127.0.0.1:5432/lobechat" }
"#;

fn routes(p: &Plan) -> Vec<(String, String, RouteAction)> {
    let mut out = Vec::new();
    for s in &p.proxy.as_ref().unwrap().sites {
        for r in &s.routes {
            out.push((s.host.clone(), r.path.clone(), r.action.clone()));
        }
    }
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

fn unit_route(unit: &str, port: u16) -> RouteAction {
    RouteAction::Unit {
        unit: unit.into(),
        port,
    }
}

#[test]
fn proxy_layout_from_the_domain_alone_keeps_the_console_private() {
    let p = plan(BOTH).unwrap();
    assert_eq!(
        routes(&p),
        [
            (
                "auth.example.test".into(),
                "/".into(),
                unit_route("logto", 3001)
            ),
            (
                "lobe.example.test".into(),
                "/".into(),
                unit_route("lobechat", 3210)
            ),
        ]
    );
    let logto = p.unit("logto").unwrap();
    assert_eq!(
        logto.env["ENDPOINT"].to_string(),
        "https://auth.example.test"
    );
    assert_eq!(
        logto.env["ADMIN_ENDPOINT"].to_string(),
        "http://localhost:3002"
    );
    assert_eq!(logto.env["TRUST_PROXY_HEADER"].to_string(), "1");
    assert_eq!(logto.ports["admin"], 3002);
    let lc = p.unit("lobechat").unwrap();
    assert_eq!(lc.env["APP_URL"].to_string(), "https://lobe.example.test");
    assert_eq!(
        lc.env["AUTH_LOGTO_ISSUER"].to_string(),
        "https://auth.example.test/oidc"
    );
    assert_eq!(
        lc.env["NODE_EXTRA_CA_CERTS"].to_string(),
        "/var/lib/ps-test/pki/ca.crt"
    );
    assert_eq!(
        lc.env["AUTH_LOGTO_SECRET"].to_string(),
        "${secret:lobechat-oidc-client-secret}"
    );
}

#[test]
fn an_admin_host_exposes_the_console_and_admin_redirects_there() {
    let body = BOTH.replace(
        "preset = \"logto\"",
        "preset = \"logto\"\nadmin_host = \"console.example.test\"",
    );
    let p = plan(&body).unwrap();
    assert_eq!(
        routes(&p),
        [
            (
                "auth.example.test".into(),
                "/".into(),
                unit_route("logto", 3001)
            ),
            (
                "auth.example.test".into(),
                "/admin".into(),
                RouteAction::Redirect("https://console.example.test/console".into())
            ),
            (
                "console.example.test".into(),
                "/".into(),
                unit_route("logto", 3002)
            ),
            (
                "lobe.example.test".into(),
                "/".into(),
                unit_route("lobechat", 3210)
            ),
        ]
    );
    assert_eq!(
        p.unit("logto").unwrap().env["ADMIN_ENDPOINT"].to_string(),
        "https://console.example.test"
    );
    let same = BOTH.replace(
        "preset = \"logto\"",
        "preset = \"logto\"\nadmin_host = \"auth.example.test\"",
    );
    let err = plan(&same).unwrap_err();
    assert!(err.contains("services.logto.admin_host"), "{err}");
}

#[test]
fn dependencies_run_seed_provision_logto_then_lobechat() {
    let p = plan(BOTH).unwrap();
    let deps = |u: &str| {
        let mut d: Vec<(String, Condition)> = p
            .unit(u)
            .unwrap()
            .depends_on
            .iter()
            .map(|d| (d.unit.clone(), d.condition))
            .collect();
        d.sort_by(|a, b| a.0.cmp(&b.0));
        d
    };
    assert_eq!(
        deps("logto"),
        [
            ("logto-provision".into(), Condition::Completed),
            ("logto-seed".into(), Condition::Completed)
        ]
    );
    assert_eq!(
        deps("logto-provision"),
        [("logto-seed".into(), Condition::Completed)]
    );
    assert_eq!(
        deps("lobechat"),
        [
            ("lobechat-migrate".into(), Condition::Completed),
            ("logto".into(), Condition::Healthy),
            ("logto-provision".into(), Condition::Completed)
        ]
    );
    let seed = p.unit("logto-seed").unwrap();
    let Exec::Command(argv) = &seed.exec else {
        panic!()
    };
    assert_eq!(
        argv,
        &["node", "packages/cli/bin/logto.js", "db", "seed", "--swe"]
    );
    assert_eq!(
        seed.workdir.as_deref(),
        Some(std::path::Path::new("/opt/logto"))
    );
    assert_eq!(p.secrets["lobechat-jwks"].kind, SecretKind::RsaJwks);
    assert!(p.secrets["lobechat-oidc-client-secret"].rotate.is_some());
}

#[test]
fn podman_uses_the_images_and_their_own_start() {
    let body = r#"
[services.logto]
preset = "logto"
image = "ghcr.io/logto-io/logto:1.42.0"
env = { DB_URL = "postgres://logto:pw@127.0.0.1:5432/logto" }

[services.lobechat]
preset = "lobechat"
image = "docker.io/lobehub/lobehub:2.1.26"
env = { DATABASE_URL = "postgres://lobechat:pw@127.0.0.1:5432/lobechat" }
"#;
    let p = plan(body).unwrap();
    assert!(
        p.unit("lobechat-migrate").is_none(),
        "the image migrates itself"
    );
    for u in ["logto", "lobechat"] {
        let u = p.unit(u).unwrap();
        assert!(matches!(&u.exec, Exec::Command(a) if a.is_empty()));
        assert!(matches!(u.runtime, Runtime::Podman(_)));
    }
    let seed = p.unit("logto-seed").unwrap();
    assert!(
        matches!(&seed.runtime, Runtime::Podman(s) if s.image == "ghcr.io/logto-io/logto:1.42.0")
    );
    assert!(matches!(&seed.exec, Exec::Command(a) if a == &["cli", "db", "seed", "--", "--swe"]));
    assert!(
        matches!(&p.unit("lobechat").unwrap().runtime,
            Runtime::Podman(s) if s.volumes == ["/var/lib/ps-test/pki/ca.crt:/var/lib/ps-test/pki/ca.crt:ro"]),
        "the container sees the internal CA (its certificate only) at the path NODE_EXTRA_CA_CERTS names"
    );
    assert_eq!(
        p.unit("lobechat").unwrap().env["HOSTNAME"].to_string(),
        "localhost",
        "containers share the host network: bind loopback only (localhost: vercel/next.js#94745)"
    );
}

#[test]
fn v2_rejected_overrides_are_config_errors_naming_the_key_and_line() {
    let body = BOTH.replace(
        "env = { DATABASE_URL = ",
        "env = { NEXTAUTH_URL = \"https://lobe.example.test/api/auth\", AUTH_URL = \"x\", DATABASE_URL = ",
    );
    let err = plan(&body).unwrap_err();
    assert!(err.contains("services.lobechat.env.NEXTAUTH_URL"), "{err}");
    assert!(err.contains("services.lobechat.env.AUTH_URL"), "{err}");
    // Located: `stack.toml:LINE: services.lobechat.env.NEXTAUTH_URL: …`.
    assert!(
        err.lines()
            .any(|l| l.trim_start().starts_with("stack.toml:") && l.contains("env.NEXTAUTH_URL:")),
        "{err}"
    );
    eprintln!("{err}");
    // v1 accepts the same keys.
    let v1 = body.replace(
        "preset = \"lobechat\"",
        "preset = \"lobechat\"\nedition = \"v1\"",
    );
    let p = plan(&v1).unwrap();
    assert!(p
        .unit("lobechat")
        .unwrap()
        .env
        .contains_key("NEXT_AUTH_SECRET"));
    assert!(!p.secrets.contains_key("lobechat-jwks"));
    let bad = BOTH.replace(
        "preset = \"lobechat\"",
        "preset = \"lobechat\"\nedition = \"v3\"",
    );
    assert!(plan(&bad)
        .unwrap_err()
        .contains("services.lobechat.edition"));
}

#[test]
fn missing_domain_database_and_release_dir_are_named() {
    let (cfg, src) = load_str(
        "stack.toml",
        None,
        "[services.logto]\npreset = \"logto\"\n".into(),
    )
    .unwrap();
    let err = build(&cfg, &src, BuildOptions { check_host: false })
        .unwrap_err()
        .to_string();
    assert!(err.contains("services.logto.host"), "{err}");
    let err = plan("[services.logto]\npreset = \"logto\"\n").unwrap_err();
    assert!(err.contains("services.logto.env.DB_URL"), "{err}");
    let err = plan(
        "[services.logto]\npreset = \"logto\"\nenv = { DB_URL = \"postgres://x:y@h/logto\" }\n",
    )
    .unwrap_err();
    assert!(err.contains("services.logto.release_dir"), "{err}");
}

#[test]
fn database_urls_and_init_edges_come_from_the_postgres_preset() {
    let p = plan(
        r#"
[services.postgres]
preset = "postgres"
port = 27999
extensions = []

[services.logto]
preset = "logto"
release_dir = "/opt/logto"

[services.lobechat]
preset = "lobechat"
release_dir = "/opt/lobechat"
"#,
    )
    .unwrap();
    assert_eq!(
        p.unit("logto").unwrap().env["DB_URL"].to_string(),
        "postgres://logto:${secret:postgres-logto}@127.0.0.1:27999/logto"
    );
    assert_eq!(
        p.unit("logto-seed").unwrap().env["DB_URL"].to_string(),
        "postgres://logto:${secret:postgres-logto}@127.0.0.1:27999/logto"
    );
    assert_eq!(
        p.unit("lobechat").unwrap().env["DATABASE_URL"].to_string(),
        "postgres://lobechat:${secret:postgres-lobechat}@127.0.0.1:27999/lobechat"
    );
    for u in ["logto-seed", "lobechat-migrate", "lobechat"] {
        assert!(
            p.unit(u)
                .unwrap()
                .depends_on
                .iter()
                .any(|d| d.unit == "postgres-init" && d.condition == Condition::Completed),
            "{u} does not wait for postgres-init"
        );
    }
}

#[test]
fn the_object_store_adds_the_bucket_route_and_s3_env_on_the_app_origin() {
    let body = format!(
        "{BOTH}\n[services.objects]\npreset = \"rustfs\"\nbinary = \"/opt/rustfs/bin/rustfs\"\n"
    );
    let p = plan(&body).unwrap();
    let lobe: Vec<(String, RouteAction)> = routes(&p)
        .into_iter()
        .filter(|(h, _, _)| h == "lobe.example.test")
        .map(|(_, path, a)| (path, a))
        .collect();
    assert_eq!(lobe.len(), 2, "{lobe:?}");
    assert!(lobe.contains(&("/".into(), unit_route("lobechat", 3210))));
    assert!(lobe.iter().any(|(path, a)| path.starts_with("/lobe")
        && matches!(a, RouteAction::Unit { unit, .. } if unit == "objects")));
    let lc = p.unit("lobechat").unwrap();
    assert_eq!(
        lc.env["S3_ENDPOINT"].to_string(),
        "https://lobe.example.test"
    );
    assert_eq!(lc.env["S3_BUCKET"].to_string(), "lobe");
    assert!(lc
        .depends_on
        .iter()
        .any(|d| d.unit == "objects-init" && d.condition == Condition::Completed));
}
