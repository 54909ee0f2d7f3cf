//! The bucket check against real S3 servers, through the plan's objects-init spec and the
//! root key in the secrets store: s3s-fs (verifies signatures) without the bucket, moto
//! (stores policies) with the policy dropped, and with a policy on a private bucket.

use crate::support::objects::{moto, objects_config, plan, root_client, s3s_fs};
use prometheus_stack::doctor::{check_bucket, Finding};
use prometheus_stack::secrets::SecretStore;

fn store_with_root_key(data: &std::path::Path, user: &str, pass: &str) -> SecretStore {
    let s = SecretStore::with_credentials(data, None);
    s.write("objects-root-user", user, None).unwrap();
    s.write("objects-root-password", pass, None).unwrap();
    s
}

const RERUN: &str =
    "`prometheus-stack restart objects-init` provisions it again (see `prometheus-stack logs objects-init`)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_on_s3s_fs() {
    let srv = s3s_fs("rootuser", "rootpassword123");
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with_root_key(tmp.path(), "rootuser", "rootpassword123");
    let p = plan(&objects_config(
        tmp.path().to_str().unwrap(),
        &format!("preset = \"rustfs\"\nport = {}", srv.port),
    ));
    assert_eq!(
        check_bucket(&p, &store).await,
        vec![Finding::error(
            "bucket",
            format!(
                "bucket lobe does not exist on objects (http://127.0.0.1:{})",
                srv.port
            ),
            RERUN
        )]
    );
    root_client(&store, srv.port)
        .create_bucket("lobe")
        .await
        .unwrap();
    assert_eq!(
        check_bucket(&p, &store).await,
        vec![],
        "private bucket, s3s-fs has no policies"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_public_read_policy_and_a_policy_on_a_private_bucket_on_moto() {
    let m = moto();
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with_root_key(tmp.path(), "rootuser", "rootpassword123");
    let public = plan(&objects_config(
        tmp.path().to_str().unwrap(),
        &format!("preset = \"rustfs\"\nport = {}\npublic_read = true", m.port),
    ));
    let c = root_client(&store, m.port);
    c.create_bucket("lobe").await.unwrap();
    let policy = prometheus_stack::stack::objects::init::public_read_policy("lobe");
    c.put_bucket_policy("lobe", &policy).await.unwrap();
    assert_eq!(check_bucket(&public, &store).await, vec![]);

    c.delete_bucket_policy("lobe").await.unwrap();
    assert_eq!(
        check_bucket(&public, &store).await,
        vec![Finding::error(
            "bucket",
            "bucket lobe has no policy, but LobeChat's files need anonymous GetObject on lobe/*",
            RERUN
        )]
    );

    c.put_bucket_policy("lobe", &policy).await.unwrap();
    let private = plan(&objects_config(
        tmp.path().to_str().unwrap(),
        &format!("preset = \"rustfs\"\nport = {}", m.port),
    ));
    let f = check_bucket(&private, &store).await;
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(
        f[0].message
            .starts_with("bucket lobe should be private but carries a policy: {"),
        "{f:?}"
    );
}
