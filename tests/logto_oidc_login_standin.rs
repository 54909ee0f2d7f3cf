//! An OIDC login through our TLS proxy: Logto's place is taken by a real OIDC provider
//! (npm `oidc-provider`, the library Logto is built on) serving https://auth.DOMAIN/oidc
//! with the client that logto-provision wrote into Logto-shaped tables in a real
//! PostgreSQL; LobeChat's place by a relying-party stand-in at https://lobe.DOMAIN using
//! only the env the lobechat preset gave it. curl plays the browser (SNI via --resolve,
//! our internal CA via --cacert). Passing proves the forwarded headers: the discovery
//! issuer equals AUTH_LOGTO_ISSUER, the redirect URI is accepted, the code is exchanged.

mod common_logto;

use common_logto::{direct, standins, Postgres};
use prometheus_stack::config::load_str;
use prometheus_stack::plan::{build, BuildOptions, Plan};
use prometheus_stack::proxy::{AlwaysHealthy, Proxy};
use prometheus_stack::secrets::SecretStore;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

const HTTPS: u16 = 27443;
const PG: u16 = 27121;

fn plan(data: &Path, logto_rel: &Path, lobe_rel: &Path) -> Plan {
    let node = standins::node();
    let text = format!(
        r#"
[stack]
domain = "example.test"
data_dir = "{data}"
air_gapped = true

[proxy]
https = "127.0.0.1:{HTTPS}"
tls = "internal"

[services.logto]
preset = "logto"
release_dir = "{logto}"
node = "{node}"
port = 27301
ports = {{ admin = 27302 }}
env = {{ DB_URL = "postgres://logto:${{secret:postgres-logto}}@127.0.0.1:{PG}/logto" }}

[services.lobechat]
preset = "lobechat"
release_dir = "{lobe}"
node = "{node}"
port = 27310
env = {{ DATABASE_URL = "postgres://lobechat:lobePw@127.0.0.1:{PG}/lobechat" }}
"#,
        data = data.display(),
        logto = logto_rel.display(),
        lobe = lobe_rel.display(),
        node = node.display(),
    );
    let (cfg, src) = load_str("stack.toml", None, text).unwrap();
    build(&cfg, &src, BuildOptions { check_host: true }).unwrap_or_else(|e| panic!("{e}"))
}

/// One request as a browser would make it: (status, Location, body).
fn browse(ca: &Path, jar: &Path, url: &str, form: Option<&str>) -> (u16, Option<String>, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "-i", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(["-b"])
        .arg(jar)
        .arg("-c")
        .arg(jar);
    for host in ["lobe.example.test", "auth.example.test"] {
        c.args(["--resolve", &format!("{host}:{HTTPS}:127.0.0.1")]);
    }
    if let Some(f) = form {
        c.args(["--data", f]);
    }
    let out = c.arg(url).output().expect("curl runs");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let location = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("location")
            .then(|| v.trim().to_string())
    });
    (status, location, body.to_string())
}

fn absolute(base: &str, loc: &str) -> String {
    if loc.starts_with("https://") {
        loc.to_string()
    } else {
        let origin: String = base.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
        format!("{origin}{loc}")
    }
}

fn form_action(html: &str) -> Option<(String, String)> {
    let a = html
        .split("action=\"")
        .nth(1)?
        .split('"')
        .next()?
        .replace("&amp;", "&");
    let prompt = html
        .split("name=\"prompt\" value=\"")
        .nth(1)?
        .split('"')
        .next()?
        .to_string();
    Some((a, prompt))
}

#[tokio::test(flavor = "multi_thread")]
async fn oidc_login_through_our_tls_proxy_with_oidc_provider_and_rp_standin() {
    let pg = Postgres::start(PG);
    pg.create_db("logto", "logtoPw");
    pg.create_db("lobechat", "lobePw");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = SecretStore::with_credentials(&data, None);
    store.write("postgres-logto", "logtoPw", None).unwrap();
    let logto_rel = standins::logto_oidc_release(dir.path());
    let lobe_rel = standins::lobechat_release(
        dir.path(),
        &json!({
            "edition": "v2",
            "resolve": {"auth.example.test": "127.0.0.1", "lobe.example.test": "127.0.0.1"}
        }),
    );
    let plan = plan(&data, &logto_rel, &lobe_rel);
    let issuer = plan.unit("lobechat").unwrap().env["AUTH_LOGTO_ISSUER"].to_string();
    assert_eq!(issuer, format!("https://auth.example.test:{HTTPS}/oidc"));

    // The proxy first: it creates the internal CA that LobeChat trusts at start.
    let proxy = Proxy::start(Arc::new(plan.clone()), Arc::new(AlwaysHealthy))
        .await
        .unwrap();
    let ca = plan.proxy.as_ref().unwrap().ca_bundle.clone().unwrap();
    assert!(ca.is_file(), "{} missing", ca.display());
    direct::ensure_secrets(&plan, &store);
    let _running = direct::run_all(plan, &store).await;

    let jar = dir.path().join("cookies.txt");
    // Discovery through the proxy names the issuer LobeChat was given.
    let (st, _, body) = browse(
        &ca,
        &jar,
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

    // The login, hop by hop.
    let mut url = format!("https://lobe.example.test:{HTTPS}/api/auth/signin/logto");
    let mut form: Option<String> = None;
    let mut seen = Vec::new();
    let done = loop {
        assert!(seen.len() < 16, "login did not finish: {seen:#?}");
        let (st, loc, body) = browse(&ca, &jar, &url, form.as_deref());
        seen.push(format!("{st} {url}"));
        form = None;
        if let Some(l) = loc {
            url = absolute(&url, &l);
            continue;
        }
        assert_eq!(st, 200, "{url}: {body}");
        if let Some((action, prompt)) = form_action(&body) {
            url = absolute(&url, &action);
            form = Some(match prompt.as_str() {
                "login" => "prompt=login&login=alice&password=anything".into(),
                other => format!("prompt={other}"),
            });
            continue;
        }
        break body;
    };
    assert!(
        done.starts_with(&format!("signed in: sub=alice iss={issuer}")),
        "{done}\n{seen:#?}"
    );
    eprintln!("{seen:#?}\n{done}");
    // Every hop stayed on the two public https origins (no 127.0.0.1:PORT, no http://).
    for hop in &seen {
        let u = hop.split_whitespace().nth(1).unwrap();
        assert!(
            u.starts_with(&format!("https://lobe.example.test:{HTTPS}/"))
                || u.starts_with(&format!("https://auth.example.test:{HTTPS}/oidc/")),
            "{hop}"
        );
    }
    assert!(seen
        .iter()
        .any(|h| h.contains("/api/auth/callback/logto?code=")));
    proxy.shutdown().await;
}
