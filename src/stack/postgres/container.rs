//! The postgres preset in podman (`runtime = "podman"`): the same server, argv, data dir
//! and socket folder as the native form, run from an image as a numeric user.
//!
//! Why it looks like this:
//! - **Same paths inside and out.** The data dir and the socket folder are bind-mounted at
//!   their host paths, so the argv, `postmaster.pid` and the switch between forms see one
//!   data dir; `PGDATA` names it too, so the official image's entrypoint finds
//!   `PG_VERSION` and never runs its own initdb (ours ran in the prepare step).
//! - **Host networking** like every podman unit (`runtime::podman`): the server listens on
//!   127.0.0.1:PORT, reached by the probe, `NAME-init` and consumers as natively.
//! - **Numeric user.** The image's postgres uid (999 in `docker.io/postgres` and
//!   `pgvector/pgvector`) need not exist on the host; `user`/`group` override it.
//! - **No capabilities**: the server only touches files its own uid owns.

use super::{PgError, PgServer, SUPERUSER};
use crate::config::Issue;
use crate::plan::{Capabilities, EnvValue, PodmanSpec, Runtime, Unit};
use crate::stack::PresetCtx;
use serde::Serialize;
use std::path::Path;
use std::process::Stdio;

/// Image when the section names none: PostgreSQL 17 with pgvector.
pub const DEFAULT_IMAGE: &str = "docker.io/pgvector/pgvector:pg17";
/// The pgvector image of PostgreSQL `major` (what a native server of that major maps to).
pub fn pgvector_image(major: &str) -> String {
    format!("docker.io/pgvector/pgvector:pg{major}")
}
/// The postgres user's uid (and gid) in the official images.
pub const DEFAULT_UID: u32 = 999;

/// Where and as whom the containerized server runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PgContainer {
    pub image: String,
    pub uid: u32,
    pub gid: u32,
}

/// A numeric id from `user`/`group`, or an issue at that key.
fn numeric(v: Option<&String>, key: String, default: u32, issues: &mut Vec<Issue>) -> u32 {
    let Some(v) = v else { return default };
    v.parse().unwrap_or_else(|_| {
        issues.push(Issue::new(
            key,
            format!("{v:?}: in podman give the image's postgres uid/gid as a number (999 in the official and pgvector images)"),
        ));
        default
    })
}

/// The container settings when the section runs in podman; None for the native form.
pub fn resolve(ctx: &PresetCtx, issues: &mut Vec<Issue>) -> Option<Box<PgContainer>> {
    let s = ctx.section;
    if !crate::stack::common::uses_podman(ctx.cfg, s) {
        return None;
    }
    if s.bin_dir.is_some() {
        issues.push(Issue::new(
            format!("{}.bin_dir", ctx.key),
            "the podman form runs the image's PostgreSQL: remove bin_dir, or set runtime = \"process\"",
        ));
    }
    let uid = numeric(
        s.user.as_ref(),
        format!("{}.user", ctx.key),
        DEFAULT_UID,
        issues,
    );
    let gid = numeric(s.group.as_ref(), format!("{}.group", ctx.key), uid, issues);
    Some(Box::new(PgContainer {
        image: s.image.clone().unwrap_or_else(|| DEFAULT_IMAGE.into()),
        uid,
        gid,
    }))
}

/// Turns the native server unit into its container form.
pub fn apply(u: &mut Unit, srv: &PgServer, c: &PgContainer) {
    let same = |p: &Path| format!("{}:{}", p.display(), p.display());
    u.runtime = Runtime::Podman(PodmanSpec {
        image: c.image.clone(),
        volumes: vec![same(&srv.data_dir), same(&srv.socket_dir)],
        // catatonit forwards SIGINT (fast shutdown) to the postmaster.
        init: true,
        gpu_devices: false,
        caps: Capabilities::none(),
        // The unit's numeric user/group below name the image's postgres.
        image_user: None,
    });
    u.user = Some(c.uid.to_string());
    u.group = Some(c.gid.to_string());
    // The official entrypoint checks $PGDATA/PG_VERSION before exec'ing the server.
    u.env.insert(
        "PGDATA".into(),
        EnvValue::text(srv.data_dir.display().to_string()),
    );
}

/// `podman run --rm` of a one-off command in the image, as the server's user, without
/// network or capabilities; `mounts` are host paths mounted at the same path.
pub fn one_off(
    c: &PgContainer,
    mounts: &[(&Path, bool)],
    argv: &[String],
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(crate::runtime::podman::podman_bin());
    cmd.args([
        "run",
        "--rm",
        "--pull=never",
        "--network=none",
        "--log-driver=none",
        "--security-opt=no-new-privileges",
        "--cap-drop=all",
        "--env=LC_ALL=C",
    ])
    .arg(format!("--user={}:{}", c.uid, c.gid));
    for (p, ro) in mounts {
        let opt = if *ro { ":ro" } else { "" };
        cmd.arg(format!("--volume={}:{}{opt}", p.display(), p.display()));
    }
    cmd.arg(&c.image)
        .args(argv)
        .current_dir("/")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// The image's PostgreSQL major version (`postgres -V` in it).
pub async fn image_major(srv: &PgServer, c: &PgContainer) -> Result<String, PgError> {
    let out = one_off(c, &[], &["postgres".into(), "-V".into()])
        .output()
        .await
        .map_err(|source| PgError::Podman {
            unit: srv.unit.clone(),
            image: c.image.clone(),
            output: source.to_string(),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    match (out.status.success(), version_major(&text)) {
        (true, Some(v)) => Ok(v),
        _ => Err(PgError::Podman {
            unit: srv.unit.clone(),
            image: c.image.clone(),
            output: format!(
                "{} {}",
                text.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }),
    }
}

/// "postgres (PostgreSQL) 17.2 (Debian …)" → "17".
pub fn version_major(text: &str) -> Option<String> {
    let v = text
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    let major: String = v.chars().take_while(|c| c.is_ascii_digit()).collect();
    (!major.is_empty()).then_some(major)
}

/// initdb into `tmp` inside the image; the password file's root-owned folder is mounted
/// read-only (the password never appears on a command line).
pub fn initdb_command(c: &PgContainer, tmp: &Path, pwfile: &Path) -> tokio::process::Command {
    let pwdir = pwfile.parent().unwrap_or(Path::new("/"));
    let argv: Vec<String> = vec![
        "initdb".into(),
        "-D".into(),
        tmp.display().to_string(),
        format!("--username={SUPERUSER}"),
        format!("--pwfile={}", pwfile.display()),
        "--auth=scram-sha-256".into(),
        "--encoding=UTF8".into(),
        "--locale=C".into(),
        "--data-checksums".into(),
    ];
    one_off(c, &[(tmp, false), (pwdir, true)], &argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majors_from_version_lines() {
        assert_eq!(
            version_major("postgres (PostgreSQL) 17.2 (Debian 17.2-1.pgdg120+1)\n").as_deref(),
            Some("17")
        );
        assert_eq!(
            version_major("postgres (PostgreSQL) 18.1").as_deref(),
            Some("18")
        );
        assert_eq!(version_major("no version"), None);
    }

    #[test]
    fn initdb_in_the_image_mounts_the_password_read_only() {
        let c = PgContainer {
            image: "localhost/pg:1".into(),
            uid: 999,
            gid: 998,
        };
        let cmd = initdb_command(&c, Path::new("/d/.pg.initdb"), Path::new("/r/.pw/pwfile"));
        let argv: Vec<String> = cmd
            .as_std()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        for want in [
            "--user=999:998",
            "--network=none",
            "--cap-drop=all",
            "--volume=/d/.pg.initdb:/d/.pg.initdb",
            "--volume=/r/.pw:/r/.pw:ro",
            "--pwfile=/r/.pw/pwfile",
            "--auth=scram-sha-256",
        ] {
            assert!(argv.iter().any(|a| a == want), "{want} missing: {argv:?}");
        }
        let img = argv.iter().position(|a| a == "localhost/pg:1").unwrap();
        assert_eq!(argv[img + 1], "initdb");
    }
}
