//! Moving one data dir between the native and the podman form (`runtime` switched on an
//! existing install): allowed when both run the same major version, the tree then given
//! to the new form's user; refused with the backup → restore steps otherwise.
//!
//! The form that last ran the data dir is recorded in `DATA_DIR/.NAME.runtime` (beside,
//! not inside, the data dir: PostgreSQL owns that tree). No record = the native form,
//! the only one before the podman form existed.

use super::datadir::UnitUser;
use super::error::SwitchRefusal;
use super::{container, PgError, PgServer};
use crate::plan::TaskContext;
use std::path::{Path, PathBuf};

fn marker(srv: &PgServer) -> PathBuf {
    let parent = srv.data_dir.parent().unwrap_or(Path::new("/"));
    parent.join(format!(".{}.runtime", srv.unit))
}

/// The form that last ran the data dir: "process" or "podman".
pub fn recorded_form(srv: &PgServer) -> String {
    match std::fs::read_to_string(marker(srv)) {
        Ok(t) if t.trim() == "podman" => "podman".into(),
        _ => "process".into(),
    }
}

/// Records that the current form runs the data dir now.
pub fn record(srv: &PgServer) -> Result<(), PgError> {
    let path = marker(srv);
    std::fs::write(&path, format!("{}\n", srv.form())).map_err(|source| PgError::Io {
        what: "cannot write",
        path,
        source,
    })
}

/// The major version the current form would run: the image's, or the bin dir's (from
/// its Debian path, else `postgres -V`).
pub async fn server_major(srv: &PgServer) -> Result<Option<String>, PgError> {
    if let Some(c) = &srv.container {
        return container::image_major(srv, c).await.map(Some);
    }
    if let Some(v) = super::bin_dir_major(&srv.bin_dir) {
        return Ok(Some(v));
    }
    let out = tokio::process::Command::new(srv.bin("postgres"))
        .arg("-V")
        .env_clear()
        .output()
        .await;
    Ok(out
        .ok()
        .and_then(|o| container::version_major(&String::from_utf8_lossy(&o.stdout))))
}

/// Refuses a data dir of another major version than the server about to run it: a
/// form switch gets the backup → restore steps, an image bump the same.
pub async fn check_major(srv: &PgServer, from: &str, data: &str) -> Result<(), PgError> {
    let Some(now) = server_major(srv).await? else {
        return Ok(());
    };
    if now == data {
        return Ok(());
    }
    if from == srv.form() && srv.container.is_none() {
        return Err(PgError::VersionMismatch {
            unit: srv.unit.clone(),
            path: srv.data_dir.clone(),
            data: data.into(),
            bin: now,
            bin_dir: srv.bin_dir.clone(),
        });
    }
    Err(PgError::SwitchVersion(Box::new(SwitchRefusal {
        unit: srv.unit.clone(),
        path: srv.data_dir.clone(),
        from: from.into(),
        to: srv.form(),
        data: data.into(),
        now,
    })))
}

/// Gives the whole tree to the new form's user; links are changed themselves, never
/// followed (`lchown`), so nothing outside the data dir is touched.
pub fn give_tree(
    srv: &PgServer,
    ctx: &TaskContext,
    from: &str,
    user: &UnitUser,
) -> Result<(), PgError> {
    let n = chown_tree(&srv.data_dir, user.uid, user.gid).map_err(|source| PgError::Io {
        what: "cannot give the data dir to the new form's user",
        path: srv.data_dir.clone(),
        source,
    })?;
    ctx.log(format!(
        "data dir {} was last run by the {from} form: gave its {n} entries to {} (uid {}) for the {} form",
        srv.data_dir.display(),
        user.name,
        user.uid,
        srv.form()
    ));
    Ok(())
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> std::io::Result<u64> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    let mut n = 1;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for e in std::fs::read_dir(path)? {
            n += chown_tree(&e?.path(), uid, gid)?;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// The tree changes owner; a link to a file outside it is changed itself, its target
    /// never (root must not be steered by what the data dir's owner planted).
    #[test]
    fn chown_tree_never_follows_links() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: chown needs root");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("data");
        std::fs::create_dir_all(data.join("base/1")).unwrap();
        std::fs::write(data.join("base/1/123"), b"x").unwrap();
        let outside = d.path().join("outside");
        std::fs::write(&outside, b"y").unwrap();
        std::os::unix::fs::symlink(&outside, data.join("link")).unwrap();
        assert_eq!(chown_tree(&data, 4242, 4343).unwrap(), 5);
        for p in ["", "base", "base/1", "base/1/123"] {
            let md = std::fs::metadata(data.join(p)).unwrap();
            assert_eq!((md.uid(), md.gid()), (4242, 4343), "{p}");
        }
        assert_eq!(
            std::fs::symlink_metadata(data.join("link")).unwrap().uid(),
            4242
        );
        assert_eq!(std::fs::metadata(&outside).unwrap().uid(), 0);
    }
}
