//! Issue 9 point 6: `prometheus-stack run` on an empty data dir with the whole stack —
//! postgres (Debian 15, preset), the object store (rustfs preset, moto-backed stand-in),
//! Logto and LobeChat (stand-ins that exit 1 on a missing or forbidden variable; Logto's
//! serves OIDC with npm `oidc-provider`) — ends with every unit healthy or completed,
//! every variable derived, and a user can sign in to LobeChat through our TLS proxy,
//! with no step by hand.

mod common;
mod common_logto;
mod common_objects;

use common_logto::browser::{assert_signed_in, login};
use common_logto::daemon::Daemon;
use common_logto::{app_tables, stack_tables, standins, AppPorts, Apps};
use common_objects::rustfs_standin;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const HTTPS: u16 = 27446;
const PG: u16 = 27151;
const S3: u16 = 27160;

#[test]
fn run_on_an_empty_data_dir_brings_the_whole_stack_up_with_standins() {
    let dir = tempfile::tempdir().unwrap();
    // PostgreSQL runs as user postgres: its data dir must be reachable.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    let logto_rel = standins::logto_oidc_release(dir.path());
    let app = format!("https://lobe.example.test:{HTTPS}");
    let lobe_rel = standins::lobechat_release(
        dir.path(),
        &json!({
            "edition": "v2",
            "check_db": true,
            "resolve": {"auth.example.test": "127.0.0.1", "lobe.example.test": "127.0.0.1"},
            "require": ["S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY", "NODE_EXTRA_CA_CERTS"],
            "equal": {
                "APP_URL": app,
                "AUTH_LOGTO_ISSUER": format!("https://auth.example.test:{HTTPS}/oidc"),
                "S3_ENDPOINT": app,
                "S3_BUCKET": "lobe",
                "S3_ENABLE_PATH_STYLE": "1",
                "S3_SET_ACL": "0",
            }
        }),
    );
    let config = dir.path().join("stack.toml");
    std::fs::write(
        &config,
        format!(
            r#"{tables}
[services.postgres]
preset = "postgres"
runtime = "process"
bin_dir = "/usr/lib/postgresql/15/bin"
port = {PG}
extensions = []

[services.objects]
preset = "rustfs"
binary = "{rustfs}"
port = {S3}
{apps}"#,
            tables = stack_tables(dir.path(), HTTPS, ""),
            rustfs = rustfs_standin(dir.path()).display(),
            apps = app_tables(
                &Apps::Native {
                    logto: &logto_rel,
                    lobechat: &lobe_rel,
                },
                &AppPorts {
                    logto: 27501,
                    admin: 27502,
                    lobechat: 27510,
                },
                "",
                "",
            ),
        ),
    )
    .unwrap();
    assert!(!data.exists());

    let log = dir.path().join("daemon.log");
    let mut d = Daemon::start(&config, &log);
    let names = d.wait_all_up_sorted(&log, Duration::from_secs(120));
    assert_eq!(
        names,
        [
            "lobechat healthy",
            "lobechat-migrate completed",
            "logto healthy",
            "logto-provision completed",
            "logto-seed completed",
            "objects healthy",
            "objects-init completed",
            "postgres healthy",
            "postgres-init completed",
        ]
    );
    // Nothing was put in place by hand: every secret came from the daemon.
    let store = prometheus_stack::secrets::SecretStore::with_credentials(&data, None);
    for s in [
        "postgres-logto",
        "postgres-lobechat",
        "lobechat-oidc-client-secret",
        "lobechat-jwks",
        "lobechat-auth-secret",
        "lobechat-key-vaults-secret",
    ] {
        assert!(store.exists(s), "secret {s} missing");
    }
    // And the point of it all: a user signs in to LobeChat with Logto, through the proxy.
    let (done, seen) = login(&data.join("pki/ca.crt"), &dir.path().join("jar"), HTTPS);
    assert_signed_in(
        &done,
        &seen,
        &format!("https://auth.example.test:{HTTPS}/oidc"),
        HTTPS,
    );
}
