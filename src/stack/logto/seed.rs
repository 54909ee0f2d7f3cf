//! The `NAME-seed` oneshot: `logto db seed --swe` creates Logto's tables and default
//! tenants once; `--swe` (skip when exists) makes every later run a no-op.

use super::podman_helper;
use crate::plan::{EnvValue, Exec, Unit};
use crate::stack::PresetCtx;
use std::path::Path;

/// The seed unit for the logto unit `ctx.name`.
pub(super) fn unit(
    ctx: &PresetCtx,
    db_url: &EnvValue,
    podman: bool,
    node: &str,
    release_dir: Option<&Path>,
) -> Unit {
    let mut u = super::helper_oneshot(ctx, "seed", "database seed");
    u.env.insert("DB_URL".into(), db_url.clone());
    u.env
        .insert("NODE_ENV".into(), EnvValue::text("production"));
    match (podman, &ctx.section.image) {
        (true, Some(image)) => {
            // ENTRYPOINT `npm run` + these args = `npm run cli db seed -- --swe`.
            u.runtime = podman_helper(image);
            u.exec = Exec::Command(
                ["cli", "db", "seed", "--", "--swe"]
                    .map(String::from)
                    .to_vec(),
            );
        }
        _ => {
            // `npm run cli` runs the CLI package's bin; calling it with our node needs no npm.
            u.workdir = release_dir.map(Path::to_path_buf);
            u.exec = Exec::Command(vec![
                node.to_string(),
                "packages/cli/bin/logto.js".into(),
                "db".into(),
                "seed".into(),
                "--swe".into(),
            ]);
        }
    }
    if let Some(d) = super::peers::postgres_init(ctx) {
        u.depends_on.push(d);
    }
    u
}
