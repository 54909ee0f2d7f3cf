//! The proxy's TLS side with real clients (rustls, curl, openssl): SNI and Host
//! selection, RSA and ECDSA chains, wildcard site, unknown host, HTTP→HTTPS redirect,
//! HTTP/2, certificate rotation on disk and reload, the internal CA.

use crate::support::http::{curl_via, run};
use crate::support::proxy::*;
use prometheus_stack::proxy::{AlwaysHealthy, UnitHealth};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn healthy() -> Arc<dyn UnitHealth> {
    Arc::new(AlwaysHealthy)
}

/// Three sites: a.test (RSA), b.test (ECDSA), *.w.test (ECDSA), each to its own upstream.
async fn three_sites(dir: &Path, ca: &TestCa) -> (String, [String; 3]) {
    let a = ca.rsa(&["a.test"]);
    let b = ca.ecdsa(&["b.test"]);
    let w = ca.ecdsa(&["*.w.test"]);
    let ua = upstream::start("site-a").await;
    let ub = upstream::start("site-b").await;
    let uw = upstream::start("site-w").await;
    let mut sites = String::new();
    for (host, leaf, up, name) in [
        ("a.test", &a, ua, "a"),
        ("b.test", &b, ub, "b"),
        ("*.w.test", &w, uw, "w"),
    ] {
        let cert = write(dir, &format!("{name}.pem"), &leaf.chain);
        let key = write(dir, &format!("{name}.key"), &leaf.key);
        sites.push_str(&format!(
            "[[proxy.site]]\nhost = {host:?}\ncert = {cert:?}\nkey = {key:?}\nroutes = [{{ path = \"/\", to = \"{up}\" }}]\n"
        ));
    }
    let toml = format!(
        "[stack]\ndata_dir = {:?}\n[proxy]\nhttps = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\n{sites}",
        dir.join("data")
    );
    (
        toml,
        [
            pem_fingerprint(&a.chain),
            pem_fingerprint(&b.chain),
            pem_fingerprint(&w.chain),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_and_host_pick_the_site_with_rsa_ecdsa_and_wildcard_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("test CA");
    let (toml, fps) = three_sites(dir.path(), &ca).await;
    let proxy = start(plan(&toml), healthy()).await;
    let addr = proxy.local_addrs().https;
    let client = TlsClient::new(&ca.pem, &[b"http/1.1"]);

    for (sni, fp, body) in [
        ("a.test", &fps[0], "hello from site-a"),
        ("b.test", &fps[1], "hello from site-b"),
        ("x.w.test", &fps[2], "hello from site-w"),
    ] {
        let tls = client.connect(addr, sni).await.unwrap();
        assert_eq!(&served_fingerprint(&tls), fp, "certificate for {sni}");
        let mut h1 = client.h1(addr, sni).await;
        let ans = get1(&mut h1, sni, "/").await;
        assert_eq!((ans.status, ans.body.as_str()), (200, body), "site {sni}");
    }

    // The wildcard covers one label only: a.b.w.test gets no site (and no wildcard cert).
    let ca_file = write(dir.path(), "ca.pem", &ca.pem);
    let mut c = curl_via(&ca_file, "a.b.w.test", addr);
    c.args(["-k", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("https://a.b.w.test:{}/", addr.port()));
    assert_eq!(run(c), "404");

    // TLS 1.1 is refused; TLS 1.2 alone works (RSA and ECDSA).
    for host in ["a.test", "b.test"] {
        let mut c = curl_via(&ca_file, host, addr);
        c.args(["--tlsv1.0", "--tls-max", "1.1"])
            .arg(format!("https://{host}:{}/", addr.port()));
        assert!(!c.output().unwrap().status.success(), "TLS 1.1 must fail");
        let mut c = curl_via(&ca_file, host, addr);
        c.args(["--tlsv1.2", "--tls-max", "1.2"])
            .arg(format!("https://{host}:{}/", addr.port()));
        assert!(run(c).starts_with("hello from site-"));
    }
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_host_gets_404_and_other_sites_host_gets_421_never_content() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("test CA");
    let (toml, _) = three_sites(dir.path(), &ca).await;
    let proxy = start(plan(&toml), healthy()).await;
    let addr = proxy.local_addrs().https;
    let client = TlsClient::new(&ca.pem, &[b"http/1.1"]);

    let mut h1 = client.h1(addr, "a.test").await;
    let ans = get1(&mut h1, "nobody.test", "/").await;
    assert_eq!(ans.status, 404);
    assert!(
        ans.body.contains("no site named <b>nobody.test</b>"),
        "{}",
        ans.body
    );
    assert!(!ans.body.contains("hello from"));

    let ans = get1(&mut h1, "b.test", "/").await;
    assert_eq!(ans.status, 421);
    assert!(ans.body.contains("Misdirected"), "{}", ans.body);
    assert!(!ans.body.contains("hello from"));

    // The connection still serves its own site.
    let ans = get1(&mut h1, "a.test:443", "/").await;
    assert_eq!((ans.status, ans.body.as_str()), (200, "hello from site-a"));

    // Unknown SNI: the handshake completes (default certificate) but only the 404 page.
    let raw = TlsClient::new(&ca.pem, &[b"http/1.1"]);
    assert!(
        raw.connect(addr, "nobody.test").await.is_err(),
        "cert must not verify for nobody.test"
    );
    let ca_file = write(dir.path(), "ca.pem", &ca.pem);
    let mut c = curl_via(&ca_file, "nobody.test", addr);
    c.args(["-k", "-w", "\n%{http_code}"])
        .arg(format!("https://nobody.test:{}/", addr.port()));
    let out = run(c);
    assert!(
        out.ends_with("\n404") && !out.contains("hello from"),
        "{out}"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_redirects_to_https_keeping_path_and_query_and_http2_works() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("test CA");
    let (toml, _) = three_sites(dir.path(), &ca).await;
    let proxy = start(plan(&toml), healthy()).await;
    let addrs = proxy.local_addrs();
    let http = addrs.http.unwrap();
    let ca_file = write(dir.path(), "ca.pem", &ca.pem);

    let mut c = curl_via(&ca_file, "a.test", http);
    c.args(["-o", "/dev/null", "-w", "%{http_code} %{redirect_url}"])
        .arg(format!("http://a.test:{}/some/path?x=1&y=%2F", http.port()));
    assert_eq!(
        run(c),
        format!(
            "301 https://a.test:{}/some/path?x=1&y=%2F",
            addrs.https.port()
        )
    );
    let mut c = curl_via(&ca_file, "nobody.test", http);
    c.args(["-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://nobody.test:{}/", http.port()));
    assert_eq!(run(c), "404");

    // Following the redirect lands on the site over HTTP/2.
    let mut c = curl_via(&ca_file, "a.test", http);
    c.arg("--resolve")
        .arg(format!("a.test:{}:127.0.0.1", addrs.https.port()));
    c.args(["-L", "--http2", "-w", "\n%{http_version}"])
        .arg(format!("http://a.test:{}/x", http.port()));
    assert_eq!(run(c), "hello from site-a\n2");

    // Our rustls client over h2 as well.
    let client = TlsClient::new(&ca.pem, &[b"h2"]);
    let mut h2 = client.h2(addrs.https, "b.test").await;
    let ans = get2(&mut h2, &format!("b.test:{}", addrs.https.port()), "/").await;
    assert_eq!((ans.status, ans.body.as_str()), (200, "hello from site-b"));
    proxy.shutdown().await;
}

fn assert_send<T: Send>(t: T) -> T {
    t
}

/// Points `link` at `target` atomically, as certbot does.
fn swap_symlink(link: &Path, target: &Path) {
    let tmp = link.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).unwrap();
    std::fs::rename(&tmp, link).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_on_disk_keeps_open_connections_and_refuses_broken_files() {
    captured_logs();
    let first = log_mark();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new("test CA");
    let one = ca.ecdsa(&["rot.test"]);
    let two = ca.rsa(&["rot.test"]);
    let archive = |n: &str, l: &Leaf| {
        (
            write(d, &format!("archive/fullchain{n}.pem"), &l.chain),
            write(d, &format!("archive/privkey{n}.pem"), &l.key),
        )
    };
    let (c1, k1) = archive("1", &one);
    let (c2, k2) = archive("2", &two);
    std::fs::create_dir_all(d.join("live")).unwrap();
    let (cert, key) = (d.join("live/fullchain.pem"), d.join("live/privkey.pem"));
    swap_symlink(&cert, &c1);
    swap_symlink(&key, &k1);
    let up = upstream::start("rot").await;
    let toml = format!(
        "[stack]\ndata_dir = {:?}\n[proxy]\nhttps = \"127.0.0.1:0\"\n[[proxy.site]]\nhost = \"rot.test\"\ncert = {cert:?}\nkey = {key:?}\nroutes = [{{ path = \"/\", to = \"{up}\" }}]\n",
        d.join("data")
    );
    let proxy = start(plan(&toml), healthy()).await;
    let addr = proxy.local_addrs().https;
    let client = TlsClient::new(&ca.pem, &[b"http/1.1"]);
    let fp = || async { served_fingerprint(&client.connect(addr, "rot.test").await.unwrap()) };

    assert_eq!(fp().await, pem_fingerprint(&one.chain));
    let mut open = client.h1(addr, "rot.test").await;
    assert_eq!(get1(&mut open, "rot.test", "/").await.status, 200);

    // Renewal: both symlinks move to the new files (RSA this time).
    swap_symlink(&key, &k2);
    swap_symlink(&cert, &c2);
    let want = pem_fingerprint(&two.chain);
    let mut seen = String::new();
    for _ in 0..40 {
        seen = fp().await;
        if seen == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        seen, want,
        "new handshakes must get the renewed certificate"
    );
    let ans = get1(&mut open, "rot.test", "/").await;
    assert_eq!(
        (ans.status, ans.body.as_str()),
        (200, "hello from rot"),
        "open connection kept"
    );

    // Lines of this test's site only: other tests log into the same buffer.
    let mine = |mark: usize| -> String {
        logs_since(mark)
            .lines()
            .filter(|l| l.contains("rot.test"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        !mine(first).contains("refused"),
        "a clean renewal (symlinks swapped one after the other) must not log a refusal:\n{}",
        mine(first)
    );

    // A broken renewal: refused, logged, the previous certificate keeps serving.
    let mark = log_mark();
    let bad = write(
        d,
        "archive/fullchain3.pem",
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    );
    swap_symlink(&cert, &bad);
    let logged = eventually(Duration::from_secs(3), || {
        mine(mark).contains("new certificate refused, the previous one keeps serving")
    })
    .await;
    assert!(logged, "no refusal log line:\n{}", mine(mark));
    assert!(mine(mark).contains("live/fullchain.pem is not a valid PEM file"));
    assert_eq!(fp().await, want);
    assert_eq!(get1(&mut open, "rot.test", "/").await.status, 200);

    // A key that does not match the certificate is refused too.
    let mark = log_mark();
    swap_symlink(&cert, &c1);
    swap_symlink(&key, &k2);
    let logged = eventually(Duration::from_secs(3), || {
        mine(mark).contains("does not belong to the certificate")
    })
    .await;
    assert!(logged, "no mismatch log line:\n{}", mine(mark));
    assert_eq!(fp().await, want);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_rereads_certificates_and_routes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new("test CA");
    let one = ca.ecdsa(&["r.test"]);
    let two = ca.ecdsa(&["r.test"]);
    let cert = write(d, "r.pem", &one.chain);
    let key = write(d, "r.key", &one.key);
    let (u1, u2) = (
        upstream::start("first").await,
        upstream::start("second").await,
    );
    let toml = |up| {
        format!(
            "[stack]\ndata_dir = {:?}\n[proxy]\nhttps = \"127.0.0.1:0\"\n[[proxy.site]]\nhost = \"r.test\"\ncert = {cert:?}\nkey = {key:?}\nroutes = [{{ path = \"/\", to = \"{up}\" }}]\n",
            d.join("data")
        )
    };
    // Polling effectively off: only reload may pick the change up.
    let opts = prometheus_stack::proxy::ProxyOptions {
        cert_poll: Duration::from_secs(3600),
        ..Default::default()
    };
    let proxy = assert_send(prometheus_stack::proxy::Proxy::start_with(
        plan(&toml(u1)),
        healthy(),
        opts,
    ))
    .await
    .unwrap();
    let addr = proxy.local_addrs().https;
    let client = TlsClient::new(&ca.pem, &[b"http/1.1"]);
    let mut open = client.h1(addr, "r.test").await;
    assert_eq!(
        get1(&mut open, "r.test", "/").await.body,
        "hello from first"
    );
    write(d, "r.pem", &two.chain);
    write(d, "r.key", &two.key);
    let reload = proxy.reload(plan(&toml(u2)));
    // The daemon calls reload from spawned tasks.
    assert_send(reload).await.unwrap();
    let tls = client.connect(addr, "r.test").await.unwrap();
    assert_eq!(served_fingerprint(&tls), pem_fingerprint(&two.chain));
    assert_eq!(
        get1(&mut open, "r.test", "/").await.body,
        "hello from second"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_ca_issues_site_certificates_that_curl_verifies_with_the_exported_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let up = upstream::start("internal").await;
    let data = d.join("data");
    let toml = format!(
        "[stack]\ndata_dir = {data:?}\n[proxy]\nhttps = \"127.0.0.1:0\"\ntls = \"internal\"\n[[proxy.site]]\nhost = \"lobe.internal.test\"\nroutes = [{{ path = \"/\", to = \"{up}\" }}]\n[[proxy.site]]\nhost = \"*.apps.internal.test\"\nroutes = [{{ path = \"/\", to = \"{up}\" }}]\n"
    );
    let cfg = write(d, "stack.toml", &toml);
    let p = plan(&toml);
    let ca_bundle = p.proxy.as_ref().unwrap().ca_bundle.clone().unwrap();
    let proxy = start(p, healthy()).await;
    let addr = proxy.local_addrs().https;
    assert!(ca_bundle.starts_with(data.join("pki")), "{ca_bundle:?}");
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(data.join("pki/ca.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600);

    for host in ["lobe.internal.test", "x.apps.internal.test"] {
        let mut c = curl_via(&ca_bundle, host, addr);
        c.arg(format!("https://{host}:{}/", addr.port()));
        assert_eq!(run(c), "hello from internal");
    }
    // Without the CA the chain does not verify.
    let mut c = std::process::Command::new("curl");
    c.args(["-sS", "--resolve"])
        .arg(format!("lobe.internal.test:{}:127.0.0.1", addr.port()))
        .arg(format!("https://lobe.internal.test:{}/", addr.port()));
    assert!(!c.output().unwrap().status.success());

    // `prometheus-stack ca` names the same file and its fingerprint (as openssl prints it).
    let out = run({
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_prometheus-stack"));
        c.arg("--config").arg(&cfg).arg("ca");
        c
    });
    assert!(out.contains(&ca_bundle.display().to_string()), "{out}");
    let ossl = run({
        let mut c = std::process::Command::new("openssl");
        c.args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(&ca_bundle);
        c
    });
    let fp = ossl.trim().rsplit('=').next().unwrap();
    assert!(out.contains(fp), "ca printed {out}, openssl says {ossl}");
    proxy.shutdown().await;
}

#[test]
fn ca_command_explains_when_the_internal_ca_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "stack.toml",
        &format!(
            "[stack]\ndata_dir = {:?}\n[proxy]\nhttps = \"127.0.0.1:0\"\n",
            dir.path().join("data")
        ),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_prometheus-stack"))
        .arg("--config")
        .arg(&cfg)
        .arg("ca")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tls = \"internal\""), "{err}");
    assert!(!dir.path().join("data/pki/ca.key").exists());
}
