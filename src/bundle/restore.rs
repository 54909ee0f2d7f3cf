//! Writing one native artifact from a bundle, as root, without trusting the bundle.
//!
//! The manifest names each artifact's target path and mode, and whoever made the bundle
//! chose them. So a target must lie lexically under a `[bundle].artifacts` entry (no `..`,
//! nothing relative); the folders below that entry are walked one at a time with
//! `openat(O_NOFOLLOW | O_DIRECTORY)`, so a symlink planted in the tree cannot redirect
//! the write; the temp file is created in the target's folder (rename needs the same
//! file system) under a random name with `O_CREAT | O_EXCL | O_NOFOLLOW`, so a name
//! planted in advance fails instead of being followed; the bytes are hashed while they are
//! copied and renamed into place only when they match the manifest (the bundle file may
//! change after `verify`); and the mode is reduced to 0755 or 0644: never setuid, setgid
//! or writable by others.

use super::manifest::HashingReader;
use super::BundleError;
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fchmod, mkdirat, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// The only modes an artifact gets: executable or not.
pub fn masked_mode(mode: u32) -> u32 {
    if mode & 0o111 != 0 {
        0o755
    } else {
        0o644
    }
}

/// A target split into the allowed folder it lies in and the names below it.
#[derive(Debug, PartialEq)]
pub struct Confined {
    pub root: PathBuf,
    /// Folders to walk, then the file name (never empty).
    pub below: Vec<OsString>,
}

/// Refuses targets that are relative, contain `..` or `.`, or lie outside every
/// `allowed` entry; `Ok(None)` when the config simply does not list it.
pub fn confine(target: &Path, allowed: &[PathBuf]) -> Result<Option<Confined>, String> {
    let mut comps = target.components();
    if comps.next() != Some(Component::RootDir) {
        return Err("is not an absolute path".into());
    }
    if comps.any(|c| !matches!(c, Component::Normal(_))) || has_dot_segment(target) {
        return Err("contains `..` or `.`: refused".into());
    }
    for a in allowed {
        let Ok(rest) = target.strip_prefix(a) else {
            continue;
        };
        let mut below: Vec<OsString> = rest.iter().map(OsString::from).collect();
        let root = if below.is_empty() {
            // The entry names this very file: walk from its folder.
            below.push(target.file_name().unwrap_or_default().into());
            target.parent().unwrap_or(Path::new("/")).to_path_buf()
        } else {
            a.clone()
        };
        return Ok(Some(Confined { root, below }));
    }
    Ok(None)
}

/// `Path::components` silently drops `.` segments; a bundle has no reason to write one.
fn has_dot_segment(p: &Path) -> bool {
    p.as_os_str()
        .to_string_lossy()
        .split('/')
        .any(|s| s == "." || s == "..")
}

/// What to write: the bytes (already positioned), their expected sha256 and size.
pub struct Source<R> {
    pub reader: R,
    pub sha256: String,
    pub size: u64,
}

/// Writes `src` to `target` (already confined) with the masked `mode`.
pub fn restore<R: Read>(
    target: &Path,
    c: &Confined,
    mode: u32,
    src: Source<R>,
) -> Result<(), BundleError> {
    let io_err = |what: &str, e: std::io::Error| BundleError::Io {
        what: format!("restoring {}: {what}", target.display()),
        source: e,
    };
    std::fs::create_dir_all(&c.root).map_err(|e| io_err("creating its folder", e))?;
    let root = File::open(&c.root).map_err(|e| io_err("opening its folder", e))?;
    let (dirs, name) = c.below.split_at(c.below.len() - 1);
    let mut dir = OwnedFd::from(root);
    for d in dirs {
        dir = open_subdir(&dir, d).map_err(|e| io_err(&format!("folder {d:?}"), e))?;
    }
    let tmp = temp_name(&name[0]);
    let fd = openat(
        &dir,
        tmp.as_os_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| io_err("creating the temp file", e.into()))?;
    let result = fill(File::from(fd), mode, src, target);
    let result = result.and_then(|()| {
        renameat(&dir, tmp.as_os_str(), &dir, name[0].as_os_str())
            .map_err(|e| io_err("renaming into place", e.into()))
    });
    if result.is_err() {
        let _ = unlinkat(&dir, tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
    }
    result
}

/// Creates (0755) or opens one folder level, refusing a symlink there.
fn open_subdir(parent: &OwnedFd, name: &OsString) -> std::io::Result<OwnedFd> {
    match mkdirat(parent, name.as_os_str(), Mode::from_bits_truncate(0o755)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(e.into()),
    }
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    openat(parent, name.as_os_str(), flags, Mode::empty()).map_err(|e| match e {
        Errno::ELOOP | Errno::ENOTDIR => std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "is a symlink or not a folder: refused (a bundle never writes through links)",
        ),
        e => e.into(),
    })
}

fn temp_name(name: &OsString) -> OsString {
    let mut t = OsString::from(".");
    t.push(name);
    t.push(format!(".import-{:016x}", rand::random::<u64>()));
    t
}

/// Copies while hashing; keeps the file only when the bytes match the manifest.
fn fill<R: Read>(
    mut out: File,
    mode: u32,
    src: Source<R>,
    target: &Path,
) -> Result<(), BundleError> {
    let io_err = |e: std::io::Error| BundleError::Io {
        what: format!("restoring {}", target.display()),
        source: e,
    };
    let mut r = HashingReader::new(src.reader.take(src.size));
    std::io::copy(&mut r, &mut out).map_err(io_err)?;
    let (sha, n) = r.finish();
    if sha != src.sha256 || n != src.size {
        return Err(BundleError::Corrupt {
            file: target.display().to_string(),
            problems: vec![format!(
                "changed after it was verified (sha256 {sha}, {n} bytes); not restored"
            )],
        });
    }
    fchmod(out.as_fd(), Mode::from_bits_truncate(masked_mode(mode)))
        .map_err(|e| io_err(e.into()))?;
    out.flush().map_err(io_err)?;
    out.sync_all().map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_lose_setuid_and_write_bits() {
        assert_eq!(masked_mode(0o4755), 0o755);
        assert_eq!(masked_mode(0o6777), 0o755);
        assert_eq!(masked_mode(0o666), 0o644);
        assert_eq!(masked_mode(0o600), 0o644);
        assert_eq!(masked_mode(0o100), 0o755);
    }

    #[test]
    fn confine_refuses_escapes() {
        let allowed = [PathBuf::from("/opt/ps/native")];
        let ok = confine(Path::new("/opt/ps/native/pg/bin/postgres"), &allowed).unwrap();
        assert_eq!(
            ok.unwrap().below,
            ["pg", "bin", "postgres"].map(OsString::from)
        );
        for bad in [
            "/opt/ps/native/../../../etc/cron.d/x",
            "/opt/ps/native/./x",
            "opt/ps/native/x",
        ] {
            assert!(confine(Path::new(bad), &allowed).is_err(), "{bad}");
        }
        assert_eq!(confine(Path::new("/etc/passwd"), &allowed).unwrap(), None);
        // A sibling whose name merely starts with the allowed folder's.
        assert_eq!(
            confine(Path::new("/opt/ps/native2/x"), &allowed).unwrap(),
            None
        );
    }

    #[test]
    fn an_allowed_file_is_walked_from_its_folder() {
        let allowed = [PathBuf::from("/opt/ps/tool")];
        let c = confine(Path::new("/opt/ps/tool"), &allowed)
            .unwrap()
            .unwrap();
        assert_eq!(c.root, PathBuf::from("/opt/ps"));
        assert_eq!(c.below, [OsString::from("tool")]);
    }

    #[test]
    fn bytes_that_differ_from_the_manifest_are_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("tool");
        let c = confine(&target, &[dir.path().to_path_buf()])
            .unwrap()
            .unwrap();
        let src = Source {
            reader: &b"evil"[..],
            sha256: "0".repeat(64),
            size: 4,
        };
        let err = restore(&target, &c, 0o755, src).unwrap_err().to_string();
        assert!(err.contains("changed after it was verified"), "{err}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "temp file left behind: {left:?}");
    }
}
