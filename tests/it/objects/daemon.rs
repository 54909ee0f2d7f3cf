//! End to end with the real daemon: `prometheus-stack run` with the rustfs preset whose
//! binary is the rustfs stand-in (moto's S3 API behind RustFS's argv/env/health; RustFS
//! cannot be built here). The daemon generates the root key, prepares the data dir, starts
//! the store, waits for /health, then objects-init provisions the bucket; `status` shows
//! the root-key warning; the daemon's TLS proxy serves the bucket on the app origin
//! (private by default: anonymous read refused, presigned read served); SIGTERM stops
//! the store.

use crate::support::daemon::TestDaemon;
use crate::support::http::{curl_async, tls_args};
use crate::support::objects::{root_client, rustfs_standin};
use prometheus_stack::secrets::SecretStore;
use prometheus_stack::stack::objects::s3::object_path;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

const PORT: u16 = 26320;
const HTTPS_PORT: u16 = 26445;

fn unit_state(v: &serde_json::Value, name: &str) -> String {
    crate::support::status_unit(v, name)
        .and_then(|u| u["state"].as_str().map(str::to_string))
        .unwrap_or_else(|| "-".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_runs_rustfs_preset_and_objects_init_with_rustfs_standin() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = tmp.path().join("data");
    let bin = rustfs_standin(tmp.path());
    let config = tmp.path().join("stack.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[stack]
domain = "example.com"
data_dir = "{}"

[proxy]
https = "127.0.0.1:{HTTPS_PORT}"
tls = "internal"

[services.objects]
preset = "rustfs"
binary = "{}"
port = {PORT}
"#,
            data.display(),
            bin.display()
        ),
    )
    .unwrap();
    // SIGTERM first on drop (also when an assertion failed), so it stops its units.
    let mut daemon = TestDaemon::builder(&config)
        .stdout(Path::new("/dev/null"))
        .spawn();

    let t = Instant::now();
    let status = loop {
        if let Some(v) = daemon.status() {
            if unit_state(&v, "objects-init") == "completed" {
                break v;
            }
            assert_ne!(unit_state(&v, "objects-init"), "failed", "{v:#}");
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "objects-init did not complete; daemon log:\n{}",
            daemon.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(unit_state(&status, "objects"), "healthy", "{status:#}");

    // status (text) carries the root-key note.
    let out = daemon.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("warning:") && text.contains("root key"),
        "{text}"
    );

    // The daemon generated the root key; the bucket is provisioned under it.
    let store = SecretStore::with_credentials(&data, None);
    let c = root_client(&store, PORT);
    let no_policy = c.get_bucket_policy("lobe").await.unwrap_err();
    assert_eq!(no_policy.code(), Some("NoSuchBucketPolicy"), "{no_policy}");

    // Through the daemon's own TLS proxy on the app origin: an uploaded object is not
    // readable anonymously (no policy; moto applies policies to anonymous reads), only
    // with a presigned GET, as LobeChat v2 reads. (Presigned uploads through the proxy are
    // proven against s3s-fs, which verifies signatures, in objects_proxy.rs.)
    let origin = format!("https://lobe.example.com:{HTTPS_PORT}");
    let tls = tls_args(&data.join("pki/ca.crt"), "lobe.example.com", HTTPS_PORT);
    c.put_object("lobe", "chat/upload.txt", "uploaded".into())
        .await
        .unwrap();
    let path = object_path("lobe", "chat/upload.txt");
    let mut args = tls.clone();
    args.push(format!("{origin}{path}"));
    let (st, body) = curl_async(args).await;
    assert_eq!(
        st,
        403,
        "anonymous read: {}",
        String::from_utf8_lossy(&body)
    );
    let get = c
        .presign(&origin, "GET", &path, Duration::from_secs(300))
        .unwrap();
    let mut args = tls.clone();
    args.push(get);
    let (st, body) = curl_async(args).await;
    assert_eq!(st, 200);
    assert_eq!(body, b"uploaded");

    let md = std::fs::metadata(data.join("objects")).unwrap();
    assert_eq!(md.permissions().mode() & 0o777, 0o750);

    // SIGTERM: the daemon stops the store and exits.
    daemon.terminate();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", PORT)).is_err(),
        "the store still listens after the daemon stopped"
    );
}
