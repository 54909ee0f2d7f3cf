//! Issue 9 point 6: `prometheus-stack run` on an empty data dir with the stack — postgres
//! (Debian 15, preset), Logto and LobeChat (stand-ins that exit 1 on a missing or
//! forbidden variable) — ends with every unit healthy or completed, every variable
//! derived, no step by hand.

mod common_logto;

use common_logto::daemon::Daemon;
use common_logto::standins;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const HTTPS: u16 = 27446;
const PG: u16 = 27151;

#[test]
fn run_on_an_empty_data_dir_brings_the_whole_stack_up_with_standins() {
    let dir = tempfile::tempdir().unwrap();
    // PostgreSQL runs as user postgres: its data dir must be reachable.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    let node = standins::node();
    let logto_rel = standins::logto_release(dir.path());
    let app = format!("https://lobe.example.test:{HTTPS}");
    let lobe_rel = standins::lobechat_release(
        dir.path(),
        &json!({
            "edition": "v2",
            "check_db": true,
            "require": ["NODE_EXTRA_CA_CERTS"],
            "equal": {
                "APP_URL": app,
                "AUTH_LOGTO_ISSUER": format!("https://auth.example.test:{HTTPS}/oidc"),
            }
        }),
    );
    let config = dir.path().join("stack.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[stack]
domain = "example.test"
data_dir = "{data}"
runtime_dir = "{run}"
air_gapped = true

[control]
socket = "{sock}"

[proxy]
https = "127.0.0.1:{HTTPS}"
tls = "internal"

[services.postgres]
preset = "postgres"
runtime = "process"
bin_dir = "/usr/lib/postgresql/15/bin"
port = {PG}
extensions = []

[services.logto]
preset = "logto"
release_dir = "{logto_rel}"
node = "{node}"
port = 27501
ports = {{ admin = 27502 }}

[services.lobechat]
preset = "lobechat"
release_dir = "{lobe_rel}"
node = "{node}"
port = 27510
"#,
            data = data.display(),
            run = dir.path().join("run").display(),
            sock = dir.path().join("control.sock").display(),
            logto_rel = logto_rel.display(),
            lobe_rel = lobe_rel.display(),
            node = node.display(),
        ),
    )
    .unwrap();
    assert!(!data.exists());

    let log = dir.path().join("daemon.log");
    let mut d = Daemon::start(&config, &log);
    let mut states = d.wait_all_up(&log, Duration::from_secs(120));
    states.sort();
    let names: Vec<String> = states.iter().map(|(n, s)| format!("{n} {s}")).collect();
    assert_eq!(
        names,
        [
            "lobechat healthy",
            "lobechat-migrate completed",
            "logto healthy",
            "logto-provision completed",
            "logto-seed completed",
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
}
