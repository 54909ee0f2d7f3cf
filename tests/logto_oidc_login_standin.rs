//! An OIDC login through our TLS proxy, all under the real daemon: Logto's place is taken
//! by a real OIDC provider (npm `oidc-provider`, the library Logto is built on) serving
//! https://auth.DOMAIN/oidc with the client that logto-provision wrote into Logto-shaped
//! tables in a real PostgreSQL; LobeChat's place by a relying-party stand-in at
//! https://lobe.DOMAIN using only the env the lobechat preset gave it (the internal CA
//! through NODE_EXTRA_CA_CERTS). curl plays the browser. Passing proves the forwarded
//! headers: the discovery issuer equals AUTH_LOGTO_ISSUER, the redirect URI is accepted,
//! the code is exchanged.

mod common;
mod common_logto;

use common_logto::browser::{assert_signed_in, browse, login};
use common_logto::daemon::Daemon;
use common_logto::{
    app_tables, lobechat_db_env, logto_db_env, stack_db_passwords, stack_tables, standins,
    AppPorts, Apps, Postgres,
};
use serde_json::json;
use std::time::Duration;

const HTTPS: u16 = 27443;
const PG: u16 = 27121;

#[test]
fn oidc_login_through_our_tls_proxy_with_oidc_provider_and_rp_standin() {
    let pg = Postgres::start(PG);
    pg.create_stack_dbs();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let logto_rel = standins::logto_oidc_release(dir.path());
    let lobe_rel = standins::lobechat_release(
        dir.path(),
        &json!({
            "edition": "v2",
            "resolve": {"auth.example.test": "127.0.0.1", "lobe.example.test": "127.0.0.1"}
        }),
    );
    let config = dir.path().join("stack.toml");
    std::fs::write(
        &config,
        format!(
            "{}{}",
            stack_tables(dir.path(), HTTPS, ""),
            app_tables(
                &Apps::Native {
                    logto: &logto_rel,
                    lobechat: &lobe_rel,
                },
                &AppPorts {
                    logto: 27301,
                    admin: 27302,
                    lobechat: 27310,
                },
                &logto_db_env(PG),
                &lobechat_db_env(PG),
            ),
        ),
    )
    .unwrap();
    stack_db_passwords(&data);

    let log = dir.path().join("daemon.log");
    let mut d = Daemon::start(&config, &log);
    d.wait_all_up(&log, Duration::from_secs(90));

    let ca = data.join("pki/ca.crt");
    let jar = dir.path().join("cookies.txt");
    let issuer = format!("https://auth.example.test:{HTTPS}/oidc");
    // Discovery through the proxy names the issuer LobeChat was given.
    let (st, _, body) = browse(
        &ca,
        &jar,
        HTTPS,
        &format!("{issuer}/.well-known/openid-configuration"),
        None,
    );
    assert_eq!(st, 200, "{body}");
    let disc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(disc["issuer"], issuer.as_str());
    assert!(disc["token_endpoint"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{issuer}/")));

    let (done, seen) = login(&ca, &jar, HTTPS);
    eprintln!("{seen:#?}\n{done}");
    assert_signed_in(&done, &seen, &issuer, HTTPS);
}
