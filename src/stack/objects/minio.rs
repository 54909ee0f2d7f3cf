//! MinIO: `minio server DIR --address 127.0.0.1:PORT --console-address 127.0.0.1:PORT+1`
//! with `MINIO_ROOT_USER/PASSWORD`, ready on `GET /minio/health/live` 200 (DESIGN §2).

use super::{Launch, LaunchInput, ROOT_PASSWORD_SECRET, ROOT_USER_SECRET};
use crate::plan::{EnvValue, Exec};
use std::collections::BTreeMap;

/// Image used with `runtime = "podman"` when the section names none: the last
/// multi-arch community tag on quay.io (research/lobechat_logto.md §4).
pub const DEFAULT_IMAGE: &str = "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z";

/// `--user` of the MinIO container when the unit sets none (the image defaults to root).
pub const MINIO_IMAGE_USER: (u32, u32) = (10001, 10001);

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
        // MinIO works as any uid that owns the data dir: not root by default (the data
        // dir is given to this uid), no capability.
        caps: crate::plan::Capabilities::none(),
        image_user: Some(MINIO_IMAGE_USER),
    }
}
