//! MinIO: `minio server DIR --address 127.0.0.1:PORT --console-address 127.0.0.1:PORT+1`
//! with `MINIO_ROOT_USER/PASSWORD`, ready on `GET /minio/health/live` 200 (DESIGN §2).

use super::{Launch, LaunchInput, ROOT_PASSWORD_SECRET, ROOT_USER_SECRET};
use crate::plan::{EnvValue, Exec};
use std::collections::BTreeMap;

/// Image used with `runtime = "podman"` when the section names none: the last
/// multi-arch community tag on quay.io (research/lobechat_logto.md §4).
pub const DEFAULT_IMAGE: &str = "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z";

pub(crate) fn launch(i: &LaunchInput) -> Launch {
    // Loopback in both runtimes: podman units use host networking (runtime::podman).
    let bind = "127.0.0.1";
    let mut env = BTreeMap::new();
    env.insert("MINIO_ROOT_USER".into(), EnvValue::secret(ROOT_USER_SECRET));
    env.insert(
        "MINIO_ROOT_PASSWORD".into(),
        EnvValue::secret(ROOT_PASSWORD_SECRET),
    );
    // Air-gapped sites: never look for updates.
    env.insert("MINIO_UPDATE".into(), EnvValue::text("off"));
    if let Some(o) = i.app_origin {
        // Community MinIO answers NotImplemented to PutBucketCors; this is its CORS knob.
        env.insert("MINIO_API_CORS_ALLOW_ORIGIN".into(), EnvValue::text(o));
    }
    let program = if i.podman { "minio" } else { i.program };
    let exec = Exec::Command(vec![
        program.to_string(),
        "server".into(),
        i.data_dir.display().to_string(),
        "--address".into(),
        format!("{bind}:{}", i.port),
        "--console-address".into(),
        format!("{bind}:{}", i.console_port),
    ]);
    Launch {
        exec,
        env,
        health_path: "/minio/health/live",
        default_image: DEFAULT_IMAGE,
        // MinIO runs as the image's root (or the unit's `--user`) and writes only the
        // data dir, owned by that user: no capability needed.
        caps: crate::plan::Capabilities::none(),
    }
}
