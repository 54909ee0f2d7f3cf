//! The object store's bucket exists and carries the policy the plan wants: anonymous
//! GetObject on `bucket/*` when `public_read`, none at all when private.

use super::Finding;
use crate::plan::{Exec, Plan, TaskSpec};
use crate::secrets::SecretStore;
use crate::stack::objects::init::{check_public_read_policy, InitSpec};
use crate::stack::objects::s3::{S3Client, S3Credentials};
use crate::stack::objects::{REGION, ROOT_PASSWORD_SECRET, ROOT_USER_SECRET};

/// Every objects-init unit's bucket, asked with the store's root key.
pub async fn check_bucket(plan: &Plan, secrets: &SecretStore) -> Vec<Finding> {
    let mut out = Vec::new();
    for u in &plan.units {
        let Exec::Task(TaskSpec::ObjectsInit(spec)) = &u.exec else {
            continue;
        };
        let creds = match (
            secrets.read(ROOT_USER_SECRET),
            secrets.read(ROOT_PASSWORD_SECRET),
        ) {
            (Ok(access_key), Ok(secret_key)) => S3Credentials {
                access_key,
                secret_key,
                region: REGION.into(),
            },
            (Err(e), _) | (_, Err(e)) => {
                out.push(Finding::error(
                    "bucket",
                    format!("cannot check bucket {}: {e}", spec.bucket),
                    "run doctor as root (the secrets store is readable by root only)",
                ));
                continue;
            }
        };
        match S3Client::new(&spec.endpoint, creds) {
            Ok(c) => out.extend(check_bucket_with(&c, spec, &u.name).await),
            Err(e) => out.push(Finding::error(
                "bucket",
                e.to_string(),
                format!("fix the endpoint of unit {}", spec.store),
            )),
        }
    }
    out
}

/// The bucket of `spec` on the store `client` talks to; `init_unit` is the unit that
/// provisions it (the fix reruns it).
pub async fn check_bucket_with(
    client: &S3Client,
    spec: &InitSpec,
    init_unit: &str,
) -> Vec<Finding> {
    let b = &spec.bucket;
    let rerun = format!("`prometheus-stack restart {init_unit}` provisions it again (see `prometheus-stack logs {init_unit}`)");
    match client.bucket_exists(b).await {
        Ok(true) => {}
        Ok(false) => {
            return vec![Finding::error(
                "bucket",
                format!(
                    "bucket {b} does not exist on {} ({})",
                    spec.store, spec.endpoint
                ),
                rerun,
            )]
        }
        Err(e) => {
            return vec![Finding::error(
                "bucket",
                format!("cannot ask {} about bucket {b}: {e}", spec.store),
                format!(
                    "make unit {} healthy first (`prometheus-stack status`)",
                    spec.store
                ),
            )]
        }
    }
    let policy = client.get_bucket_policy(b).await;
    let problem = match (spec.public_read, policy) {
        (true, Ok(json)) => check_public_read_policy(&json, b).err().map(|p| {
            format!("bucket {b}'s policy is not exactly anonymous GetObject on {b}/*: {p}")
        }),
        (true, Err(e)) if e.code() == Some("NoSuchBucketPolicy") => Some(format!(
            "bucket {b} has no policy, but LobeChat's files need anonymous GetObject on {b}/*"
        )),
        (false, Ok(json)) if !json.trim().is_empty() => Some(format!(
            "bucket {b} should be private but carries a policy: {}",
            json.trim()
        )),
        (false, Ok(_)) => None,
        // A store without bucket policies cannot have opened a private bucket.
        (false, Err(e)) if matches!(e.code(), Some("NoSuchBucketPolicy" | "NotImplemented")) => {
            None
        }
        (_, Err(e)) => Some(format!("reading the policy of bucket {b}: {e}")),
    };
    problem
        .map(|m| vec![Finding::error("bucket", m, rerun)])
        .unwrap_or_default()
}
