//! The stand-ins (tests/standins/) that take Logto's and LobeChat's place in the daemon
//! tests are not pushovers: given the presets' env plus one forbidden variable, or minus
//! one needed variable, they exit 1 naming it.

use crate::support::logto::{app_tables, direct, logto_db_env, standins, AppPorts, Apps};
use prometheus_stack::config::load_str;
use prometheus_stack::plan::{build, BuildOptions, Plan};
use prometheus_stack::secrets::SecretStore;
use serde_json::json;
use std::path::Path;

struct Ports {
    pg: u16,
    logto: u16,
    admin: u16,
    lobe: u16,
}

fn config(
    data: &Path,
    rel: &Path,
    lobe_rel: &Path,
    edition: &str,
    p: &Ports,
    extra: &str,
) -> String {
    format!(
        r#"
[stack]
domain = "example.test"
data_dir = "{data}"
air_gapped = true

[proxy]
https = "127.0.0.1:27443"
tls = "internal"
{apps}"#,
        data = data.display(),
        apps = app_tables(
            &Apps::Native {
                logto: rel,
                lobechat: lobe_rel,
            },
            &AppPorts {
                logto: p.logto,
                admin: p.admin,
                lobechat: p.lobe,
            },
            &logto_db_env(p.pg),
            &format!("edition = \"{edition}\"\n{extra}"),
        ),
    )
}

fn plan_of(text: String) -> Plan {
    let (cfg, src) = load_str("stack.toml", None, text).unwrap();
    build(&cfg, &src, BuildOptions { check_host: true }).unwrap_or_else(|e| panic!("{e}"))
}

/// The stand-ins are not pushovers: a forbidden or missing variable makes them exit 1.
#[test]
fn lobechat_standin_refuses_forbidden_and_missing_variables() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = SecretStore::with_credentials(&data, None);
    let p = Ports {
        pg: 27113,
        logto: 27241,
        admin: 27242,
        lobe: 27250,
    };
    let logto_rel = standins::logto_release(dir.path());
    let lobe_rel = standins::lobechat_release(dir.path(), &json!({"edition": "v2"}));
    std::fs::write(lobe_rel.join("migrated"), "ok").unwrap();
    let extra = "env = { DATABASE_URL = \"postgres://lobechat:pw@127.0.0.1:27113/lobechat\" }";
    let plan = plan_of(config(&data, &logto_rel, &lobe_rel, "v2", &p, extra));
    direct::ensure_secrets(&plan, &store);
    store
        .write("lobechat-oidc-client-secret", &"s".repeat(43), None)
        .unwrap();

    let out = direct::command(&plan, &store, "lobechat")
        .env("NEXTAUTH_URL", "https://lobe.example.test/api/auth")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("forbidden NEXTAUTH_URL"), "{err}");

    let out = direct::command(&plan, &store, "lobechat")
        .env_remove("JWKS_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing JWKS_KEY"));

    let out = direct::command(&plan, &store, "lobechat")
        .env(
            "JWKS_KEY",
            r#"{"keys":[{"kty":"RSA","alg":"RS256","n":"AQAB","e":"AQAB"}]}"#,
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("JWKS_KEY"));

    let out = direct::command(&plan, &store, "logto")
        .env("ADMIN_ENDPOINT", "https://auth.example.test:27443")
        .env_remove("TRUST_PROXY_HEADER")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("different origin"), "{err}");
    assert!(err.contains("missing TRUST_PROXY_HEADER"), "{err}");
}
