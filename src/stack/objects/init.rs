//! objects-init: the oneshot that makes the store usable by LobeChat, idempotently.
//!
//! Bucket (created when missing), private by default (no bucket policy; one found is
//! removed: uploads are user content and LobeChat v2 reads them through presigned URLs),
//! or with `public_read` a policy granting anonymous `s3:GetObject` on `BUCKET/*` and
//! nothing else (read back and checked); CORS for the app origin where the
//! store implements PutBucketCors. Retries inside while the store warms up; the supervisor's
//! on-failure restart with backoff covers the rest.

use super::s3::{S3Client, S3Credentials, S3Error};
use super::{Flavor, PresetCtx, REGION, ROOT_PASSWORD_SECRET, ROOT_USER_SECRET};
use crate::plan::{CrashLoop, Exec, TaskContext, TaskSpec, Unit};
use crate::secrets::SecretError;
use std::future::Future;
use std::time::{Duration, Instant};

/// How long objects-init waits for a store that refuses connections or answers 503.
pub const WARMUP: Duration = Duration::from_secs(90);

/// What objects-init provisions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InitSpec {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    pub bucket: String,
    /// The browser's origin for CORS; None skips CORS.
    pub app_origin: Option<String>,
    /// The store's unit name (for messages and the dependency).
    pub store: String,
    pub flavor: Flavor,
    /// Anonymous GetObject on `bucket/*` (LobeChat v1); false keeps the bucket private
    /// and removes a policy found on it.
    pub public_read: bool,
}

/// Errors of objects-init; each says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("objects-init needs the store's root key: {0}")]
    Secret(#[from] SecretError),
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error("the object store at {endpoint} does not implement bucket policies (PutBucketPolicy answered NotImplemented); LobeChat needs anonymous GetObject on {bucket}/* — use RustFS or MinIO")]
    PolicyUnsupported { endpoint: String, bucket: String },
    #[error("the bucket policy on {bucket} read back from the store is not exactly anonymous GetObject on {bucket}/*: {problem}")]
    PolicyMismatch {
        bucket: String,
        #[source]
        problem: PolicyProblem,
    },
}

/// How a bucket policy read back differs from anonymous GetObject on `BUCKET/*`.
#[derive(Debug, thiserror::Error)]
pub enum PolicyProblem {
    #[error("not JSON ({source}): {json}")]
    NotJson {
        source: serde_json::Error,
        json: String,
    },
    #[error("no Statement in {0}")]
    NoStatement(String),
    #[error("no statements")]
    Empty,
    #[error("statement with Effect {0}")]
    Effect(String),
    #[error("principal {0} is not anonymous")]
    Principal(String),
    #[error("actions {0:?} (only s3:GetObject allowed)")]
    Actions(Vec<String>),
    #[error("resources {found:?} (only {want})")]
    Resources { found: Vec<String>, want: String },
}

/// What changed, for the log and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The bucket was created by this run (false: it existed).
    pub created: bool,
    pub cors: CorsOutcome,
}

/// What happened with CORS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOutcome {
    /// PutBucketCors accepted for this origin.
    Set(String),
    /// The store answered NotImplemented (fine: the bucket is same-origin).
    NotSupported,
    /// No app origin is known.
    Skipped,
}

/// The objects-init unit: after the store is healthy; restarted on failure with backoff.
pub fn unit(name: &str, ctx: &PresetCtx, spec: InitSpec) -> Unit {
    let origin = format!("preset {} (objects-init)", spec.flavor.preset());
    let store = spec.store.clone();
    let exec = Exec::Task(TaskSpec::ObjectsInit(spec));
    let mut u = crate::stack::init_unit(name, &ctx.key, &origin, &store, exec);
    u.crash_loop = CrashLoop {
        failures: 10,
        window: Duration::from_secs(600),
    };
    u
}

/// The Rust function behind objects-init: the root key from the store, then [`provision`].
pub async fn run(spec: &InitSpec, ctx: &TaskContext) -> Result<(), InitError> {
    let creds = S3Credentials {
        access_key: ctx.secrets.read(ROOT_USER_SECRET)?,
        secret_key: ctx.secrets.read(ROOT_PASSWORD_SECRET)?,
        region: REGION.into(),
    };
    let client = S3Client::new(&spec.endpoint, creds)?;
    let log = |l: String| ctx.log(l);
    provision(&client, spec, &log, WARMUP).await.map(|_| ())
}

/// Provisions the bucket; safe to run any number of times.
pub async fn provision(
    client: &S3Client,
    spec: &InitSpec,
    log: &(dyn Fn(String) + Send + Sync),
    warmup: Duration,
) -> Result<Outcome, InitError> {
    let started = Instant::now();
    let b = spec.bucket.as_str();
    let exists = retrying(started, warmup, log, || client.bucket_exists(b)).await?;
    let created = if exists {
        log(format!("bucket {b} already exists"));
        false
    } else {
        let c = retrying(started, warmup, log, || client.create_bucket(b)).await?;
        log(format!(
            "bucket {b} {}",
            if c { "created" } else { "already exists" }
        ));
        c
    };

    if spec.public_read {
        ensure_public_read(client, spec, log, started, warmup).await?;
    } else {
        ensure_private(client, b, log, started, warmup).await?;
    }

    let cors = match &spec.app_origin {
        None => {
            log("CORS: no app origin known, skipped".into());
            CorsOutcome::Skipped
        }
        Some(origin) => {
            let xml = cors_xml(origin);
            match retrying(started, warmup, log, || client.put_bucket_cors(b, &xml)).await {
                Ok(()) => {
                    log(format!(
                        "CORS: {origin} may GET/HEAD/PUT/POST on bucket {b}"
                    ));
                    CorsOutcome::Set(origin.clone())
                }
                Err(e) if e.code() == Some("NotImplemented") => {
                    log(format!(
                        "note: the store does not implement PutBucketCors; not needed, the bucket is served on {origin} itself"
                    ));
                    CorsOutcome::NotSupported
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    log(format!(
        "note: LobeChat uses the {} root key; no dedicated access key is created (the store's admin API is not driven by this build)",
        spec.flavor.preset()
    ));
    Ok(Outcome { created, cors })
}

/// Anonymous GetObject on `bucket/*` only, written and read back.
async fn ensure_public_read(
    client: &S3Client,
    spec: &InitSpec,
    log: &(dyn Fn(String) + Send + Sync),
    started: Instant,
    warmup: Duration,
) -> Result<(), InitError> {
    let b = spec.bucket.as_str();
    let policy = public_read_policy(b);
    match retrying(started, warmup, log, || {
        client.put_bucket_policy(b, &policy)
    })
    .await
    {
        Ok(()) => {}
        Err(e) if e.code() == Some("NotImplemented") => {
            return Err(InitError::PolicyUnsupported {
                endpoint: client.endpoint().into(),
                bucket: b.into(),
            })
        }
        Err(e) => return Err(e.into()),
    }
    let stored = retrying(started, warmup, log, || client.get_bucket_policy(b)).await?;
    check_public_read_policy(&stored, b).map_err(|problem| InitError::PolicyMismatch {
        bucket: b.into(),
        problem,
    })?;
    log(format!(
        "bucket policy: anonymous s3:GetObject on arn:aws:s3:::{b}/* only (read back and checked)"
    ));
    Ok(())
}

/// No bucket policy at all: every read and write must be signed (LobeChat v2 presigns).
/// A policy found (an older install's public read, or one set by hand) is removed.
async fn ensure_private(
    client: &S3Client,
    b: &str,
    log: &(dyn Fn(String) + Send + Sync),
    started: Instant,
    warmup: Duration,
) -> Result<(), InitError> {
    match retrying(started, warmup, log, || client.get_bucket_policy(b)).await {
        Ok(found) => {
            retrying(started, warmup, log, || client.delete_bucket_policy(b)).await?;
            log(format!(
                "bucket {b} is private: removed the bucket policy it had ({})",
                found.chars().take(200).collect::<String>()
            ));
        }
        Err(e) if e.code() == Some("NoSuchBucketPolicy") => {
            log(format!("bucket {b} is private (no bucket policy)"));
        }
        Err(e) if e.code() == Some("NotImplemented") => {
            log(format!(
                "bucket {b} is private (the store has no bucket policies: only signed requests are served)"
            ));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Retries `f` while the store is starting (connection refused, 503), up to `warmup`.
async fn retrying<T, F, Fut>(
    started: Instant,
    warmup: Duration,
    log: &(dyn Fn(String) + Send + Sync),
    mut f: F,
) -> Result<T, S3Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, S3Error>>,
{
    let mut delay = Duration::from_millis(200);
    let mut attempt = 0u32;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && started.elapsed() + delay < warmup => {
                attempt += 1;
                // First and then every fifth try: enough to see progress, not a flood.
                if attempt == 1 || attempt % 5 == 0 {
                    log(format!("store not ready yet ({e}); retrying"));
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The only access anonymous clients get: GetObject on the bucket's objects.
pub fn public_read_policy(bucket: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "PublicReadObjects",
            "Effect": "Allow",
            "Principal": {"AWS": ["*"]},
            "Action": ["s3:GetObject"],
            "Resource": [format!("arn:aws:s3:::{bucket}/*")]
        }]
    })
    .to_string()
}

/// Checks a stored policy grants exactly anonymous GetObject on `bucket/*`, nothing more.
pub fn check_public_read_policy(json: &str, bucket: &str) -> Result<(), PolicyProblem> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|source| PolicyProblem::NotJson {
            source,
            json: json.into(),
        })?;
    let statements = match &v["Statement"] {
        serde_json::Value::Array(a) => a.clone(),
        o @ serde_json::Value::Object(_) => vec![o.clone()],
        _ => return Err(PolicyProblem::NoStatement(json.into())),
    };
    if statements.is_empty() {
        return Err(PolicyProblem::Empty);
    }
    let want_resource = format!("arn:aws:s3:::{bucket}/*");
    for s in &statements {
        if s["Effect"] != "Allow" {
            // A Deny only narrows access; anything else is unexpected.
            if s["Effect"] == "Deny" {
                continue;
            }
            return Err(PolicyProblem::Effect(s["Effect"].to_string()));
        }
        let principal_any = match &s["Principal"] {
            serde_json::Value::String(p) => p == "*",
            serde_json::Value::Object(o) => string_set(&o["AWS"]) == ["*"],
            _ => false,
        };
        if !principal_any {
            return Err(PolicyProblem::Principal(s["Principal"].to_string()));
        }
        let actions = string_set(&s["Action"]);
        if actions != ["s3:GetObject"] {
            return Err(PolicyProblem::Actions(actions));
        }
        let resources = string_set(&s["Resource"]);
        if resources != [want_resource.as_str()] {
            return Err(PolicyProblem::Resources {
                found: resources,
                want: want_resource,
            });
        }
    }
    Ok(())
}

fn string_set(v: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = match v {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| x.to_string())
            })
            .collect(),
        _ => Vec::new(),
    };
    out.sort();
    out.dedup();
    out
}

/// A CORS configuration letting the app origin use presigned URLs from the browser.
pub fn cors_xml(origin: &str) -> String {
    let o = origin
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<CORSConfiguration><CORSRule><AllowedOrigin>{o}</AllowedOrigin>\
<AllowedMethod>GET</AllowedMethod><AllowedMethod>HEAD</AllowedMethod>\
<AllowedMethod>PUT</AllowedMethod><AllowedMethod>POST</AllowedMethod>\
<AllowedHeader>*</AllowedHeader><ExposeHeader>ETag</ExposeHeader>\
<MaxAgeSeconds>3600</MaxAgeSeconds></CORSRule></CORSConfiguration>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_policy_passes_our_check() {
        check_public_read_policy(&public_read_policy("lobe"), "lobe").unwrap();
    }

    #[test]
    fn wider_policies_are_rejected() {
        let list = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::lobe/*","arn:aws:s3:::lobe"]}]}"#;
        assert!(check_public_read_policy(list, "lobe").is_err());
        let put = r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::lobe/*"}]}"#;
        assert!(check_public_read_policy(put, "lobe").is_err());
        let other = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}]}"#;
        assert!(check_public_read_policy(other, "lobe").is_err());
        let ok = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::lobe/*"}}"#;
        check_public_read_policy(ok, "lobe").unwrap();
    }

    #[test]
    fn cors_origin_is_escaped() {
        assert!(cors_xml("https://a&b").contains("<AllowedOrigin>https://a&amp;b</AllowedOrigin>"));
    }
}
