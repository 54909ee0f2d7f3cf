//! objects-init and the S3 client against real S3 servers from tests/setup.sh.
//!
//! moto accepts policy and CORS calls but verifies no signatures: it proves which
//! provisioning calls are made and what the store keeps (read back), idempotency, and —
//! since it evaluates bucket policies for anonymous object reads — that our policy opens
//! anonymous GET. It lets anonymous clients LIST and PUT whatever the policy says, so
//! those refusals are shown by s3s-fs (verifies SigV4, no policies) and by the stored
//! document being exactly GetObject on BUCKET/*. MinIO and RustFS cannot be installed here.

use crate::support::http::curl;
use crate::support::objects::{
    moto, objects_config, plan, run_unit_task, s3s_fs, spawn_moto, task_ctx, wait_port,
};
use prometheus_stack::secrets::SecretStore;
use prometheus_stack::stack::objects::init::{
    check_public_read_policy, provision, CorsOutcome, InitError, InitSpec,
};
use prometheus_stack::stack::objects::s3::{object_path, S3Client, S3Credentials};
use prometheus_stack::stack::objects::Flavor;
use std::time::Duration;

fn write_root_key(data: &std::path::Path, user: &str, pass: &str) {
    let s = SecretStore::with_credentials(data, None);
    s.write("objects-root-user", user, None).unwrap();
    s.write("objects-root-password", pass, None).unwrap();
}

fn client(endpoint: &str, ak: &str, sk: &str) -> S3Client {
    S3Client::new(
        endpoint,
        S3Credentials {
            access_key: ak.into(),
            secret_key: sk.into(),
            region: "us-east-1".into(),
        },
    )
    .unwrap()
}

fn quiet() -> impl Fn(String) + Send + Sync {
    |_| {}
}

/// The plan's objects-init Task (the real closure) against moto: bucket, policy, CORS,
/// all read back; a second run changes nothing and succeeds.
async fn init_task_against_moto(preset: &str) {
    let m = moto();
    let tmp = tempfile::tempdir().unwrap();
    write_root_key(tmp.path(), "rootuser", "rootpassword123");
    let p = plan(&objects_config(
        tmp.path().to_str().unwrap(),
        &format!(
            "preset = \"{preset}\"\nport = {}\npublic_read = true",
            m.port
        ),
    ));

    let (ctx, lines) = task_ctx(&p, "objects-init", tmp.path());
    run_unit_task(ctx).await.expect("first run");
    let first = lines.lock().unwrap().join("\n");
    assert!(first.contains("bucket lobe created"), "{first}");
    assert!(first.contains("root key"), "{first}");

    let c = client(&m.endpoint(), "rootuser", "rootpassword123");
    let stored = c.get_bucket_policy("lobe").await.unwrap();
    check_public_read_policy(&stored, "lobe").unwrap();
    let v: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(v["Statement"].as_array().unwrap().len(), 1);
    assert_eq!(
        v["Statement"][0]["Action"],
        serde_json::json!(["s3:GetObject"])
    );
    assert_eq!(
        v["Statement"][0]["Resource"],
        serde_json::json!(["arn:aws:s3:::lobe/*"])
    );
    let cors = c.get_bucket_cors("lobe").await.unwrap();
    assert!(
        cors.contains("<AllowedOrigin>https://lobe.example.com:26443</AllowedOrigin>"),
        "{cors}"
    );
    assert!(
        cors.contains("<AllowedMethod>PUT</AllowedMethod>"),
        "{cors}"
    );

    // Idempotent: an object in the bucket survives, the run says the bucket exists.
    c.put_object("lobe", "keep.txt", "kept".into())
        .await
        .unwrap();
    let (ctx, lines) = task_ctx(&p, "objects-init", tmp.path());
    run_unit_task(ctx).await.expect("second run");
    let second = lines.lock().unwrap().join("\n");
    assert!(second.contains("bucket lobe already exists"), "{second}");
    assert_eq!(
        &c.get_object("lobe", "keep.txt").await.unwrap()[..],
        b"kept"
    );
    check_public_read_policy(&c.get_bucket_policy("lobe").await.unwrap(), "lobe").unwrap();
}

#[tokio::test]
async fn rustfs_preset_init_provisions_and_reads_back_policy_and_cors_moto() {
    init_task_against_moto("rustfs").await;
}

#[tokio::test]
async fn minio_preset_init_s3_calls_against_moto_standin() {
    init_task_against_moto("minio").await;
}

#[tokio::test]
async fn init_replaces_a_wider_policy_with_exactly_public_get_moto() {
    let m = moto();
    let c = client(&m.endpoint(), "a", "b");
    c.create_bucket("lobe").await.unwrap();
    let wide = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":["s3:GetObject","s3:ListBucket","s3:PutObject"],"Resource":["arn:aws:s3:::lobe","arn:aws:s3:::lobe/*"]}]}"#;
    c.put_bucket_policy("lobe", wide).await.unwrap();
    assert!(check_public_read_policy(&c.get_bucket_policy("lobe").await.unwrap(), "lobe").is_err());

    let spec = InitSpec {
        endpoint: m.endpoint(),
        bucket: "lobe".into(),
        app_origin: None,
        store: "objects".into(),
        flavor: Flavor::RustFs,
        public_read: true,
    };
    let out = provision(&c, &spec, &quiet(), Duration::from_secs(5))
        .await
        .unwrap();
    assert!(!out.created);
    assert_eq!(out.cors, CorsOutcome::Skipped);
    let stored = c.get_bucket_policy("lobe").await.unwrap();
    check_public_read_policy(&stored, "lobe").unwrap();
    assert!(
        !stored.contains("ListBucket") && !stored.contains("PutObject"),
        "{stored}"
    );
}

#[tokio::test]
async fn init_retries_while_the_store_warms_up_moto() {
    let port = crate::support::objects::free_port();
    let spec = InitSpec {
        endpoint: format!("http://127.0.0.1:{port}"),
        bucket: "lobe".into(),
        app_origin: Some("https://lobe.example.com".into()),
        store: "objects".into(),
        flavor: Flavor::Minio,
        public_read: true,
    };
    let c = client(&spec.endpoint, "a", "b");
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let l2 = lines.clone();
    let log = move |s: String| l2.lock().unwrap().push(s);
    // Nothing listens yet: the store "starts" 1.5 s after objects-init.
    let starter = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(1500));
        let m = spawn_moto(port);
        wait_port(port, Duration::from_secs(30));
        m
    });
    let out = provision(&c, &spec, &log, Duration::from_secs(60))
        .await
        .expect("provisioned once the store is up");
    let _moto = starter.await.unwrap();
    assert!(out.created);
    assert_eq!(
        out.cors,
        CorsOutcome::Set("https://lobe.example.com".into())
    );
    let l = lines.lock().unwrap().join("\n");
    assert!(l.contains("store not ready yet"), "{l}");

    // And a store that never comes gives up after the warm-up with a clear error.
    let dead = client(
        &format!("http://127.0.0.1:{}", crate::support::objects::free_port()),
        "a",
        "b",
    );
    let t = std::time::Instant::now();
    let e = provision(&dead, &spec, &quiet(), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(
        e.to_string().contains("cannot reach the object store"),
        "{e}"
    );
}

#[tokio::test]
async fn init_fails_clearly_when_the_store_lacks_bucket_policies_s3s_fs() {
    let s = s3s_fs("initkey", "initsecret12345");
    let c = client(&s.endpoint(), "initkey", "initsecret12345");
    let spec = InitSpec {
        endpoint: s.endpoint(),
        bucket: "lobe".into(),
        app_origin: Some("https://lobe.example.com".into()),
        store: "objects".into(),
        flavor: Flavor::RustFs,
        public_read: true,
    };
    let e = provision(&c, &spec, &quiet(), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(e, InitError::PolicyUnsupported { .. }), "{e}");
    assert!(e.to_string().contains("NotImplemented"), "{e}");
    // The bucket was created (signed CreateBucket verified by s3s-fs) before that.
    assert!(c.bucket_exists("lobe").await.unwrap());
}

#[tokio::test]
async fn sigv4_signed_requests_and_presigned_urls_verify_at_s3s_fs() {
    let s = s3s_fs("presignkey", "presignsecret123");
    let c = client(&s.endpoint(), "presignkey", "presignsecret123");
    assert!(c.create_bucket("lobe").await.unwrap());
    c.put_object("lobe", "dir/hello world.txt", "hello".into())
        .await
        .unwrap();
    assert_eq!(
        &c.get_object("lobe", "dir/hello world.txt").await.unwrap()[..],
        b"hello"
    );

    // Presigned PUT then presigned GET, by curl (a client that knows nothing of SigV4).
    let path = object_path("lobe", "up/ü file.bin");
    let put = c
        .presign(&s.endpoint(), "PUT", &path, Duration::from_secs(300))
        .unwrap();
    let (st, body) = curl(&["-X", "PUT", "--data-binary", "presigned body", &put]);
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let get = c
        .presign(&s.endpoint(), "GET", &path, Duration::from_secs(300))
        .unwrap();
    let (st, body) = curl(&[&get]);
    assert_eq!(st, 200);
    assert_eq!(body, b"presigned body");

    // Tampered: another key under the same signature, a changed signature, wrong secret.
    let other = get.replace("/up/", "/dir/");
    assert_eq!(curl(&[&other]).0, 403);
    let sig_at = get.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut bad = get.clone();
    let flip = if &bad[sig_at..sig_at + 1] == "0" {
        "1"
    } else {
        "0"
    };
    bad.replace_range(sig_at..sig_at + 1, flip);
    assert_eq!(curl(&[&bad]).0, 403);
    let wrong = client(&s.endpoint(), "presignkey", "not-the-secret");
    let forged = wrong
        .presign(&s.endpoint(), "GET", &path, Duration::from_secs(300))
        .unwrap();
    assert_eq!(curl(&[&forged]).0, 403);
    assert!(wrong
        .get_object("lobe", "dir/hello world.txt")
        .await
        .is_err());
}

#[tokio::test]
async fn s3s_fs_refuses_anonymous_list_put_and_get() {
    let s = s3s_fs("anonkey", "anonsecret12345");
    let c = client(&s.endpoint(), "anonkey", "anonsecret12345");
    c.create_bucket("lobe").await.unwrap();
    c.put_object("lobe", "a.txt", "secret".into())
        .await
        .unwrap();
    let base = s.endpoint();
    let (st, body) = curl(&[&format!("{base}/lobe/a.txt")]);
    assert_eq!(st, 403);
    assert!(!String::from_utf8_lossy(&body).contains("secret"));
    assert_eq!(curl(&[&format!("{base}/lobe?list-type=2")]).0, 403);
    assert_eq!(curl(&[&format!("{base}/lobe")]).0, 403);
    assert_eq!(
        curl(&[
            "-X",
            "PUT",
            "--data-binary",
            "x",
            &format!("{base}/lobe/new.txt")
        ])
        .0,
        403
    );
    assert!(c.get_object("lobe", "new.txt").await.is_err());
}

/// moto evaluates bucket policies for anonymous object reads (a private object is 403
/// unless the bucket policy permits GetObject): before objects-init an anonymous GET is
/// refused, after it the same GET works, and a bucket without the policy stays closed.
/// (moto does not refuse anonymous LIST or PUT at all; s3s-fs shows those are refused.)
#[tokio::test]
async fn anonymous_get_works_only_through_the_policy_objects_init_sets_moto() {
    let m = moto();
    let c = client(&m.endpoint(), "a", "b");
    c.create_bucket("lobe").await.unwrap();
    c.create_bucket("other").await.unwrap();
    c.put_object("lobe", "img/pic.png", "png bytes".into())
        .await
        .unwrap();
    c.put_object("other", "img/pic.png", "hidden".into())
        .await
        .unwrap();
    let url = |b: &str| format!("{}{}", m.endpoint(), object_path(b, "img/pic.png"));
    assert_eq!(curl(&[&url("lobe")]).0, 403, "private before the policy");

    let spec = InitSpec {
        endpoint: m.endpoint(),
        bucket: "lobe".into(),
        app_origin: None,
        store: "objects".into(),
        flavor: Flavor::Minio,
        public_read: true,
    };
    provision(&c, &spec, &quiet(), Duration::from_secs(5))
        .await
        .unwrap();
    let (st, body) = curl(&[&url("lobe")]);
    assert_eq!(st, 200);
    assert_eq!(body, b"png bytes");
    assert_eq!(
        curl(&[&url("other")]).0,
        403,
        "the policy is scoped to its bucket"
    );

    // The default (LobeChat v2): private. The policy found is removed, the GET refused.
    let private = InitSpec {
        public_read: false,
        ..spec
    };
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let l2 = lines.clone();
    let log = move |s: String| l2.lock().unwrap().push(s);
    provision(&c, &private, &log, Duration::from_secs(5))
        .await
        .unwrap();
    let l = lines.lock().unwrap().join("\n");
    assert!(l.contains("removed the bucket policy"), "{l}");
    assert_eq!(curl(&[&url("lobe")]).0, 403, "private again");
    provision(&c, &private, &quiet(), Duration::from_secs(5))
        .await
        .unwrap();
}

/// The rustfs preset without LobeChat v1 keeps the bucket private; on a store without
/// bucket policies (s3s-fs: every unsigned request is refused) that is not an error.
#[tokio::test]
async fn preset_default_is_a_private_bucket_s3s_fs() {
    let s = s3s_fs("privkey", "privsecret12345");
    let tmp = tempfile::tempdir().unwrap();
    write_root_key(tmp.path(), "privkey", "privsecret12345");
    let p = plan(&objects_config(
        tmp.path().to_str().unwrap(),
        &format!("preset = \"rustfs\"\nport = {}", s.port),
    ));
    let (ctx, lines) = task_ctx(&p, "objects-init", tmp.path());
    run_unit_task(ctx).await.expect("private bucket on s3s-fs");
    let l = lines.lock().unwrap().join("\n");
    assert!(l.contains("bucket lobe is private"), "{l}");
    let c = client(&s.endpoint(), "privkey", "privsecret12345");
    c.put_object("lobe", "x.png", "png".into()).await.unwrap();
    let anon = format!("{}{}", s.endpoint(), object_path("lobe", "x.png"));
    assert_eq!(curl(&[&anon]).0, 403);
}
