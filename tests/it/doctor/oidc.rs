//! The issuer check through our real proxy (internal CA): a small upstream behind the
//! site auth.doctor.test serves the discovery document, first agreeing with the issuer
//! the unit is given, then not (Logto behind a wrong ENDPOINT says its internal URL).

use crate::support::objects::{free_port, plan, start_proxy, wait_port, Server};
use prometheus_stack::doctor::{check_issuer, Finding};
use std::process::{Command, Stdio};
use std::time::Duration;

fn write_doc(root: &std::path::Path, issuer: &str) {
    let dir = root.join("oidc/.well-known");
    std::fs::create_dir_all(&dir).unwrap();
    let doc = serde_json::json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")});
    std::fs::write(dir.join("openid-configuration"), doc.to_string()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issuer_given_to_lobechat_against_the_discovery_document_through_the_proxy() {
    let tmp = tempfile::tempdir().unwrap();
    let www = tmp.path().join("www");
    write_doc(&www, "https://auth.doctor.test/oidc");
    let up = free_port();
    let child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &up.to_string(),
            "--directory",
        ])
        .arg(&www)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 http.server");
    let upstream = Server {
        child,
        port: up,
        dir: None,
    };
    wait_port(up, Duration::from_secs(20));
    let https = free_port();
    let p = plan(&format!(
        r#"
[stack]
data_dir = "{data}"
[proxy]
https = "127.0.0.1:{https}"
tls = "internal"
[[proxy.site]]
host = "auth.doctor.test"
routes = [{{ path = "/", to = "127.0.0.1:{up}" }}]
[services.lobechat]
command = ["sleep", "1000"]
env = {{ AUTH_LOGTO_ISSUER = "https://auth.doctor.test/oidc" }}
"#,
        data = tmp.path().join("data").display()
    ));
    let _proxy = start_proxy(&p).await;
    wait_port(https, Duration::from_secs(20));
    assert_eq!(check_issuer(&p).await, vec![]);

    write_doc(&www, "http://localhost:3001/oidc");
    assert_eq!(
        check_issuer(&p).await,
        vec![Finding::error(
            "oidc",
            "unit lobechat is given issuer https://auth.doctor.test/oidc (env AUTH_LOGTO_ISSUER) but Logto's discovery document says http://localhost:3001/oidc",
            "make them agree: remove services.lobechat.env.AUTH_LOGTO_ISSUER (the preset derives it from Logto's endpoint) or set Logto's ENDPOINT to the public auth URL, then `prometheus-stack reload`"
        )]
    );

    drop(upstream);
    let f = check_issuer(&p).await;
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        f[0].message,
        format!("Logto's discovery document https://auth.doctor.test/oidc/.well-known/openid-configuration answers HTTP 502 through the proxy (127.0.0.1:{https})")
    );
}
