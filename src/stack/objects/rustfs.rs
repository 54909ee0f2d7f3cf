//! RustFS: `rustfs --address 127.0.0.1:PORT DIR` with `RUSTFS_ACCESS_KEY/SECRET_KEY`,
//! ready on `GET /health` 200 (DESIGN §2; docs.rustfs.com environment variables).

use super::{Launch, LaunchInput, ROOT_PASSWORD_SECRET, ROOT_USER_SECRET};
use crate::plan::{EnvValue, Exec};
use std::collections::BTreeMap;

/// Image used with `runtime = "podman"` when the section names none.
pub const DEFAULT_IMAGE: &str = "docker.io/rustfs/rustfs:1.0.0";

/// The image's own user (`USER rustfs`, 10001:10001): the data dir is given to it.
pub const RUSTFS_IMAGE_USER: (u32, u32) = (10001, 10001);

pub(crate) fn launch(i: &LaunchInput) -> Launch {
    // Loopback in both runtimes: podman units use host networking (runtime::podman).
    let bind = "127.0.0.1";
    let address = format!("{bind}:{}", i.port);
    let data = i.data_dir.display().to_string();
    let mut env = BTreeMap::new();
    env.insert(
        "RUSTFS_ACCESS_KEY".into(),
        EnvValue::secret(ROOT_USER_SECRET),
    );
    env.insert(
        "RUSTFS_SECRET_KEY".into(),
        EnvValue::secret(ROOT_PASSWORD_SECRET),
    );
    // Same values as the arguments, so the image's entrypoint (which reads env) agrees.
    env.insert("RUSTFS_ADDRESS".into(), EnvValue::text(&address));
    env.insert("RUSTFS_VOLUMES".into(), EnvValue::text(&data));
    // The console would otherwise listen on 0.0.0.0:9001.
    env.insert("RUSTFS_CONSOLE_ENABLE".into(), EnvValue::text("true"));
    env.insert(
        "RUSTFS_CONSOLE_ADDRESS".into(),
        EnvValue::text(format!("{bind}:{}", i.console_port)),
    );
    if let Some(o) = i.app_origin {
        env.insert("RUSTFS_CORS_ALLOWED_ORIGINS".into(), EnvValue::text(o));
    }
    let exec = if i.podman {
        Exec::Command(Vec::new())
    } else {
        Exec::Command(vec![
            i.program.to_string(),
            "--address".into(),
            address,
            data,
        ])
    };
    Launch {
        exec,
        env,
        health_path: "/health",
        default_image: DEFAULT_IMAGE,
        // The image runs as its own `rustfs` user (USER 10001 in its Dockerfile) and its
        // entrypoint only mkdirs (a chown there is best-effort, `|| true`): no capability.
        caps: crate::plan::Capabilities::none(),
        image_user: Some(RUSTFS_IMAGE_USER),
    }
}
