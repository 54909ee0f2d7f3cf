//! `prometheus-stack run` with the logto and lobechat presets on an empty data dir:
//! seed, provisioning, Logto and LobeChat (both editions) reach healthy/completed with
//! stand-ins (tests/standins/) in place of Logto and LobeChat, which exit 1 on a missing
//! or forbidden variable. PostgreSQL is real (Debian 15); the secrets are the daemon's.

use crate::support::daemon::TestDaemon;
use crate::support::logto::daemon;
use crate::support::logto::{
    app_tables, lobechat_db_env, logto_db_env, stack_db_passwords, stack_tables, standins,
    AppPorts, Apps, Postgres,
};
use serde_json::json;
use std::process::Command;
use std::time::Duration;

struct Ports {
    pg: u16,
    https: u16,
    logto: u16,
    admin: u16,
    lobe: u16,
}

fn http_status(url: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
            url,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A new [stack].domain + `reload`: provisioning moves the client's URIs in Logto, and
/// LobeChat restarts with the new APP_URL and issuer (its stand-in checks both).
fn domain_change_by_reload(
    d: &TestDaemon,
    pg: &Postgres,
    config: &std::path::Path,
    lobe_rel: &std::path::Path,
    p: &Ports,
) {
    let restarts_before = d.unit_status("lobechat")["restarts"].as_u64().unwrap();
    let expect = json!({
        "edition": "v2",
        "equal": {
            "APP_URL": format!("https://lobe.other.test:{}", p.https),
            "AUTH_LOGTO_ISSUER": format!("https://auth.other.test:{}/oidc", p.https),
        }
    });
    std::fs::write(lobe_rel.join("standin.json"), expect.to_string()).unwrap();
    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(config, text.replace("example.test", "other.test")).unwrap();
    let out = d.cli(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = format!(
        "[\"https://lobe.other.test:{}/api/auth/callback/logto\"]",
        p.https
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let uris = pg
            .psql(
                "logto",
                "SELECT oidc_client_metadata->>'redirectUris' FROM applications WHERE id = 'prometheus-lobechat'",
            )
            .unwrap();
        let lc = d.unit_status("lobechat");
        let restarted = lc["restarts"].as_u64().unwrap() > restarts_before;
        if uris.replace(' ', "") == want && restarted && lc["state"] == "healthy" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after reload: uris {uris}, lobechat {lc}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    pg.assert_one_traditional_app();
}

/// `secrets rotate lobechat-oidc-client-secret`: Logto gets the new value (through the
/// provisioning task), the store keeps it, LobeChat restarts with it.
fn rotate_client_secret(
    d: &TestDaemon,
    pg: &Postgres,
    store: &prometheus_stack::secrets::SecretStore,
) {
    let old = store.read("lobechat-oidc-client-secret").unwrap();
    let restarts_before = d.unit_status("lobechat")["restarts"].as_u64().unwrap();
    let out = d.cli(&["secrets", "rotate", "lobechat-oidc-client-secret"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("restarted lobechat"));
    let new = store.read("lobechat-oidc-client-secret").unwrap();
    assert_ne!(new, old);
    assert_eq!(
        pg.psql(
            "logto",
            "SELECT a.secret || ' ' || s.value FROM applications a \
             JOIN application_secrets s ON s.application_id = a.id"
        )
        .unwrap(),
        format!("{new} {new}")
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let lc = d.unit_status("lobechat");
        if lc["restarts"].as_u64().unwrap() > restarts_before && lc["state"] == "healthy" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "lobechat: {lc}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn run_daemon(edition: &str, p: Ports) {
    let pg = Postgres::start(p.pg);
    pg.create_stack_dbs();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(!data.exists(), "the data dir starts empty");
    let logto_rel = standins::logto_release(dir.path());
    let lobe_rel = standins::lobechat_release(
        dir.path(),
        &json!({
            "edition": edition,
            "require": ["NODE_EXTRA_CA_CERTS", "INTERNAL_APP_URL", "AUTH_LOGTO_SECRET"],
            "equal": {
                "AUTH_LOGTO_ISSUER": format!("https://auth.example.test:{}/oidc", p.https),
                "AUTH_LOGTO_ID": "prometheus-lobechat",
                "APP_URL": format!("https://lobe.example.test:{}", p.https),
                "INTERNAL_APP_URL": format!("http://127.0.0.1:{}", p.lobe),
                "NODE_EXTRA_CA_CERTS": data.join("pki/ca.crt").display().to_string(),
            }
        }),
    );
    let config = dir.path().join("stack.toml");
    std::fs::write(
        &config,
        format!(
            "{}{}",
            stack_tables(dir.path(), p.https, ""),
            app_tables(
                &Apps::Native {
                    logto: &logto_rel,
                    lobechat: &lobe_rel,
                },
                &AppPorts {
                    logto: p.logto,
                    admin: p.admin,
                    lobechat: p.lobe,
                },
                &logto_db_env(p.pg),
                &format!("edition = \"{edition}\"\n{}", lobechat_db_env(p.pg)),
            ),
        ),
    )
    .unwrap();
    // The database passwords are the only thing put in place beforehand (the postgres
    // preset creates them itself; this test's PostgreSQL is started by the test).
    let store = stack_db_passwords(&data);

    let log = dir.path().join("daemon.log");
    let d = daemon::start(&config, &log);
    assert_eq!(
        d.wait_all_up_sorted(Duration::from_secs(90)),
        [
            "lobechat healthy",
            "lobechat-migrate completed",
            "logto healthy",
            "logto-provision completed",
            "logto-seed completed",
        ]
    );
    assert_eq!(
        http_status(&format!("http://127.0.0.1:{}/api/status", p.logto)),
        "204"
    );
    assert_eq!(http_status(&format!("http://127.0.0.1:{}/", p.lobe)), "200");
    // Generated by the daemon, used by LobeChat, and the one Logto holds.
    let secret = store.read("lobechat-oidc-client-secret").unwrap();
    assert_eq!(
        pg.psql(
            "logto",
            "SELECT secret FROM applications WHERE id = 'prometheus-lobechat'"
        )
        .unwrap(),
        secret
    );
    for s in ["lobechat-key-vaults-secret", "lobechat-auth-secret"] {
        assert!(store.read(s).unwrap().len() >= 43, "{s}");
    }
    assert_eq!(store.exists("lobechat-jwks"), edition == "v2");
    if edition == "v2" {
        domain_change_by_reload(&d, &pg, &config, &lobe_rel, &p);
    } else {
        rotate_client_secret(&d, &pg, &store);
    }
    drop(d);
    assert_ne!(
        http_status(&format!("http://127.0.0.1:{}/", p.lobe)),
        "200",
        "lobechat still answers after the daemon stopped"
    );
}

#[test]
fn run_brings_up_logto_and_lobechat_v2_standins() {
    run_daemon(
        "v2",
        Ports {
            pg: 27131,
            https: 27444,
            logto: 27401,
            admin: 27402,
            lobe: 27410,
        },
    );
}

#[test]
fn run_brings_up_logto_and_lobechat_v1_standins() {
    run_daemon(
        "v1",
        Ports {
            pg: 27132,
            https: 27445,
            logto: 27421,
            admin: 27422,
            lobe: 27430,
        },
    );
}
