//! The PostgreSQL cluster as a base backup: `pg_basebackup -Ft -X fetch` to stdout, each
//! file of its tar stream re-emitted as one entry of ours (sizes are in its headers, so
//! nothing is staged), and put back file by file into an empty data dir on restore.

use super::archive::{copy_out, ArchiveWriter};
use super::manifest::{Kind, PgInfo};
use super::sources::PgSource;
use super::BackupError;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

/// A PostgreSQL program of the server: `BIN/name` natively; in the podman form `name`
/// from the server's image, on the host network as the server's uid (the password
/// travels as `PGPASSWORD` from our env, never on a command line).
fn tool(name: &str, bin_dir: &Path, image: Option<&str>, user: Option<&str>) -> Command {
    let Some(image) = image else {
        return Command::new(bin_dir.join(name));
    };
    let mut cmd = Command::new(crate::runtime::podman::podman_bin());
    cmd.args([
        "run",
        "--rm",
        "--pull=never",
        "--network=host",
        "--log-driver=none",
        "--security-opt=no-new-privileges",
        "--cap-drop=all",
        "--env=PGPASSWORD",
        "--env=PGAPPNAME",
    ]);
    if let Some(u) = user {
        cmd.arg(format!("--user={u}"));
    }
    cmd.arg(image).arg(name);
    cmd
}

/// `postgres --version` of what runs the server → its major version ("18.1" → "18",
/// "9.6.3" → "9.6").
pub fn installed_major(pg: &PgInfo) -> Result<String, String> {
    let what = pg.server();
    let out = tool("postgres", &pg.bin_dir, pg.image.as_deref(), None)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run postgres of {what}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .split_whitespace()
        .last()
        .ok_or_else(|| format!("postgres --version of {what} printed nothing"))?;
    Ok(major_of(version))
}

/// The major part of a version string.
pub fn major_of(version: &str) -> String {
    let parts: Vec<&str> = version.split(['.', ' ', 'b', 'r']).collect();
    match parts.first().and_then(|p| p.parse::<u32>().ok()) {
        Some(m) if m < 10 && parts.len() > 1 => format!("{m}.{}", parts[1]),
        Some(m) => m.to_string(),
        None => version.to_string(),
    }
}

/// Streams a base backup of the cluster into `w`.
pub fn backup(pg: &PgSource, w: &mut ArchiveWriter) -> Result<PgInfo, BackupError> {
    let srv = &pg.server;
    let fail = |reason: String| BackupError::Postgres {
        unit: srv.unit.clone(),
        reason,
    };
    let image = srv.container.as_ref().map(|c| c.image.clone());
    let uid_gid = srv
        .container
        .as_ref()
        .map(|c| format!("{}:{}", c.uid, c.gid));
    let bin = srv.program("pg_basebackup");
    let mut child = tool(
        "pg_basebackup",
        &srv.bin_dir,
        image.as_deref(),
        uid_gid.as_deref(),
    )
    .args(["-h", "127.0.0.1", "-p", &srv.port.to_string()])
    .args(["-U", crate::stack::postgres::SUPERUSER, "-w"])
    .args([
        "-D",
        "-",
        "-F",
        "t",
        "-X",
        "fetch",
        "-c",
        "fast",
        "--no-manifest",
    ])
    .env("PGPASSWORD", &pg.password)
    .env("PGAPPNAME", "prometheus-stack backup")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .map_err(|e| fail(format!("cannot run {bin}: {e}")))?;
    let mut stderr = child.stderr.take().expect("piped");
    let errs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let stdout = child.stdout.take().expect("piped");
    let copied = copy_stream(stdout, w);
    let status = child
        .wait()
        .map_err(|e| fail(format!("waiting for pg_basebackup: {e}")))?;
    let errs = errs.join().unwrap_or_default();
    if !status.success() {
        let tail: Vec<&str> = errs.lines().rev().take(6).collect();
        return Err(fail(format!(
            "pg_basebackup failed ({status}): {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        )));
    }
    let major = copied?.ok_or_else(|| fail("the base backup has no PG_VERSION".into()))?;
    let mut info = PgInfo {
        unit: srv.unit.clone(),
        version: major.clone(),
        major,
        user: srv.user.clone(),
        bin_dir: srv.bin_dir.clone(),
        image,
        group: srv.container.as_ref().map(|c| c.gid.to_string()),
    };
    if let Some(v) = installed_version(&info) {
        info.version = v;
    }
    Ok(info)
}

fn installed_version(pg: &PgInfo) -> Option<String> {
    let out = tool("postgres", &pg.bin_dir, pg.image.as_deref(), None)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    Some(
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .last()?
            .to_string(),
    )
}

/// Re-emits every file of pg_basebackup's tar; returns the content of PG_VERSION.
fn copy_stream(stdout: impl Read, w: &mut ArchiveWriter) -> Result<Option<String>, BackupError> {
    let mut ar = tar::Archive::new(stdout);
    let bad = |e: std::io::Error| BackupError::Io {
        what: "reading pg_basebackup's output".into(),
        source: e,
    };
    let mut major = None;
    for entry in ar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        // Some entries come as `./pg_wal/…`: the name tar writes back is normalized, so
        // normalize here too or the manifest and the archive disagree.
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let rel = raw
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect::<Vec<_>>()
            .join("/");
        let mode = entry.header().mode().unwrap_or(0o600) & 0o7777;
        let path = format!("postgres/{rel}");
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                let kind = Kind::Pg {
                    rel,
                    mode,
                    dir: true,
                };
                w.append_empty(&path, kind)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.header().size().map_err(bad)?;
                if rel == "PG_VERSION" {
                    let mut v = String::new();
                    (&mut entry).take(64).read_to_string(&mut v).map_err(bad)?;
                    major = Some(v.trim().to_string());
                    let kind = Kind::Pg {
                        rel,
                        mode,
                        dir: false,
                    };
                    w.append(&path, size, mode, kind, v.as_bytes())?;
                    continue;
                }
                let kind = Kind::Pg {
                    rel,
                    mode,
                    dir: false,
                };
                w.append(&path, size, mode, kind, &mut entry)?;
            }
            other => {
                return Err(BackupError::Postgres {
                    unit: "postgres".into(),
                    reason: format!(
                    "{rel} in the base backup is a {other:?} entry (tablespaces are not supported)"
                ),
                })
            }
        }
    }
    Ok(major)
}

/// `rel` made safe below `root` (no absolute paths, no `..`).
pub fn confined(root: &Path, rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    p.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| root.join(p))
}

/// Writes one entry of the cluster below `pgdata`.
pub fn restore_entry(
    pgdata: &Path,
    entry: &str,
    (rel, mode, dir): (&str, u32, bool),
    r: &mut dyn Read,
) -> Result<(), BackupError> {
    let target = confined(pgdata, rel).ok_or_else(|| BackupError::Damaged {
        file: String::new(),
        entry: entry.into(),
        reason: format!("unsafe path {rel:?}"),
    })?;
    if dir {
        return make_dir(&target);
    }
    if let Some(parent) = target.parent() {
        make_dir(parent)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o700)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&target)
        .map_err(BackupError::io(format!("creating {}", target.display())))?;
    copy_out(entry, r, &mut f, &format!("writing {}", target.display()))?;
    Ok(())
}

fn make_dir(d: &Path) -> Result<(), BackupError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(d)
        .map_err(BackupError::io(format!("creating {}", d.display())))
}

/// Gives the restored data dir to the server's user (when the restore runs as root).
pub fn give_to(pgdata: &Path, user: Option<&str>, group: Option<&str>) -> Result<(), BackupError> {
    let Some(name) = user else { return Ok(()) };
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    // The podman form's owner is the image's numeric uid:gid, not a host user.
    if let Ok(uid) = name.parse::<u32>() {
        let gid = group.and_then(|g| g.parse().ok()).unwrap_or(uid);
        return chown_tree(pgdata, uid, gid);
    }
    let u = nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .ok_or_else(|| BackupError::Config(format!("user {name} (owner of the PostgreSQL data dir) does not exist here; create it (the postgresql package does) and restore again")))?;
    chown_tree(pgdata, u.uid.as_raw(), u.gid.as_raw())
}

fn chown_tree(p: &Path, uid: u32, gid: u32) -> Result<(), BackupError> {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid))
        .map_err(BackupError::io(format!("chown {}", p.display())))?;
    if std::fs::symlink_metadata(p)
        .map(|m| m.is_dir())
        .unwrap_or(false)
    {
        for e in
            std::fs::read_dir(p).map_err(BackupError::io(format!("reading {}", p.display())))?
        {
            let e = e.map_err(BackupError::io(format!("reading {}", p.display())))?;
            chown_tree(&e.path(), uid, gid)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majors_and_confinement() {
        assert_eq!(major_of("18.1"), "18");
        assert_eq!(major_of("15.14"), "15");
        assert_eq!(major_of("9.6.3"), "9.6");
        assert_eq!(major_of("17beta2"), "17");
        let root = Path::new("/r");
        assert_eq!(
            confined(root, "base/1/2"),
            Some(PathBuf::from("/r/base/1/2"))
        );
        assert_eq!(confined(root, "../x"), None);
        assert_eq!(confined(root, "/etc/x"), None);
    }
}
