//! The rustfs preset's unit run the way a supervisor runs it — prepare task, argv, env with
//! secrets resolved from the store, health probe, then the objects-init task — against a
//! stand-in `rustfs` (moto's S3 API behind RustFS's argv/env/health; RustFS itself cannot
//! be built here). The stand-in refuses any access key but the root key it was given.

use crate::support::objects::{
    objects_config, plan, root_client, run_unit_task, rustfs_standin, task_ctx,
};
use prometheus_stack::plan::{Exec, Probe};
use prometheus_stack::secrets::SecretStore;
use prometheus_stack::stack::objects::s3::{S3Client, S3Credentials};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PORT: u16 = 26310;

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rustfs_preset_unit_and_init_against_rustfs_standin() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let bin = rustfs_standin(tmp.path());
    let p = plan(&objects_config(
        &data.display().to_string(),
        &format!(
            "preset = \"rustfs\"\nbinary = \"{}\"\nport = {PORT}",
            bin.display()
        ),
    ));
    // What the core does before starting units: every secret exists.
    let store = SecretStore::with_credentials(&data, None);
    for (name, spec) in &p.secrets {
        store.ensure(name, &spec.kind, None).unwrap();
    }
    let u = p.unit("objects").unwrap().clone();
    let (ctx, _) = task_ctx(&p, "objects", &data);
    u.prepare.as_ref().unwrap().run(ctx).await.expect("prepare");

    let Exec::Command(argv) = &u.exec else {
        panic!()
    };
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .env("PATH", "/usr/bin:/bin");
    for (k, v) in &u.env {
        cmd.env(k, v.resolve(&store).unwrap());
    }
    let _child = Kill(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // The preset's own health probe: GET /health → 200.
    let Probe::Http { url, expect } = &u.health.as_ref().unwrap().probe else {
        panic!()
    };
    let t = Instant::now();
    loop {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", url])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout) == expect.unwrap().to_string() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "never healthy at {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The stand-in saw the root key from the secrets store, and the loopback address.
    let seen: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("objects/standin.json")).unwrap())
            .unwrap();
    assert_eq!(seen["access_key"], store.read("objects-root-user").unwrap());
    assert_eq!(
        seen["secret_key"],
        store.read("objects-root-password").unwrap()
    );
    assert_eq!(seen["argv"][1], format!("127.0.0.1:{PORT}"));

    let (ctx, lines) = task_ctx(&p, "objects-init", &data);
    run_unit_task(ctx).await.expect("objects-init");
    let log = lines.lock().unwrap().join("\n");
    assert!(log.contains("bucket lobe created"), "{log}");

    let root = root_client(&store, PORT);
    assert!(log.contains("bucket lobe is private"), "{log}");
    let none = root.get_bucket_policy("lobe").await.unwrap_err();
    assert_eq!(none.code(), Some("NoSuchBucketPolicy"), "{none}");
    // Another key is refused by the stand-in: init really used the root key.
    let other = S3Client::new(
        &format!("http://127.0.0.1:{PORT}"),
        S3Credentials {
            access_key: "someone-else".into(),
            secret_key: "whatever123".into(),
            region: "us-east-1".into(),
        },
    )
    .unwrap();
    assert_eq!(
        other.get_bucket_policy("lobe").await.unwrap_err().status(),
        Some(403)
    );
}
