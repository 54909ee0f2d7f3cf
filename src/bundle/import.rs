//! `bundle import`: verify everything first, then load each image through `podman load`
//! (streamed from the bundle, with progress), then restore the native artifacts the
//! config lists.

use super::manifest::{Content, HashingReader};
use super::progress::{mib, Progress};
use super::verify::{verify, Located};
use super::BundleError;
use crate::runtime::podman::{image, podman_bin};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What an import did.
#[derive(Debug, Default)]
pub struct Imported {
    pub images: Vec<String>,
    pub artifacts: Vec<PathBuf>,
    /// Artifacts not restored because the config does not list them.
    pub skipped: Vec<PathBuf>,
}

/// Verifies `file` completely, then loads its images and restores the artifacts that
/// `allowed_artifacts` (the config's `[bundle].artifacts`) cover.
pub fn import(file: &Path, allowed_artifacts: &[PathBuf]) -> Result<Imported, BundleError> {
    println!("verifying {}", file.display());
    let v = verify(file, true)?;
    println!(
        "verified {} entries (sha256 and size)",
        v.manifest.files.len()
    );
    let mut done = Imported::default();
    for fe in &v.manifest.files {
        if let Content::Image { image: name } = &fe.content {
            let loc = v.entries[&fe.path];
            load_image(file, name, &fe.path, &fe.sha256, loc)?;
            if !image::present_blocking(name)? {
                return Err(BundleError::Load {
                    image: name.clone(),
                    reason: "podman load succeeded but the image is not present under that name"
                        .into(),
                });
            }
            done.images.push(name.clone());
        }
    }
    for fe in &v.manifest.files {
        if let Content::Artifact { target, mode } = &fe.content {
            if !allowed_artifacts.iter().any(|a| target.starts_with(a)) {
                println!(
                    "skipped artifact {} (not under [bundle].artifacts of this config)",
                    target.display()
                );
                done.skipped.push(target.clone());
                continue;
            }
            restore(file, target, *mode, v.entries[&fe.path])?;
            println!("restored {} ({})", target.display(), mib(fe.size));
            done.artifacts.push(target.clone());
        }
    }
    Ok(done)
}

fn section(file: &Path, loc: Located) -> Result<impl Read, BundleError> {
    let mut f = File::open(file).map_err(|e| BundleError::Io {
        what: format!("opening bundle {}", file.display()),
        source: e,
    })?;
    f.seek(SeekFrom::Start(loc.offset))
        .map_err(|e| BundleError::Io {
            what: format!("reading bundle {}", file.display()),
            source: e,
        })?;
    Ok(f.take(loc.size))
}

fn load_image(
    file: &Path,
    name: &str,
    entry: &str,
    sha: &str,
    loc: Located,
) -> Result<(), BundleError> {
    let load_err = |reason: String| BundleError::Load {
        image: name.to_string(),
        reason,
    };
    let mut child = Command::new(podman_bin())
        .args(["load", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| load_err(format!("cannot start {}: {e}", podman_bin())))?;
    let mut stdin = child.stdin.take().expect("piped");
    let mut src = HashingReader::new(section(file, loc)?);
    let mut p = Progress::start(format!("loading {name}"), loc.size);
    let mut buf = vec![0u8; 1 << 20];
    let copy: std::io::Result<()> = (|| loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stdin.write_all(&buf[..n])?;
        p.update(src.count());
    })();
    drop(stdin);
    let out = child
        .wait_with_output()
        .map_err(|e| load_err(format!("waiting for podman load: {e}")))?;
    if !out.status.success() {
        return Err(load_err(format!(
            "podman load: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    copy.map_err(|e| load_err(format!("streaming {entry} into podman load: {e}")))?;
    let (got, _) = src.finish();
    if got != sha {
        // The file changed since it was verified.
        return Err(BundleError::Corrupt {
            file: file.display().to_string(),
            problems: vec![format!("{entry}: changed while importing (sha256 {got})")],
        });
    }
    p.finish(&format!("loaded {name}"));
    Ok(())
}

fn restore(file: &Path, target: &Path, mode: u32, loc: Located) -> Result<(), BundleError> {
    let err = |e| BundleError::Io {
        what: format!("restoring {}", target.display()),
        source: e,
    };
    if let Some(d) = target.parent() {
        std::fs::create_dir_all(d).map_err(err)?;
    }
    let tmp = target.with_file_name(format!(
        ".{}.import-{}",
        target.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    let mut src = section(file, loc)?;
    let r: std::io::Result<()> = (|| {
        std::io::copy(&mut src, &mut out)?;
        out.sync_all()?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
        std::fs::rename(&tmp, target)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r.map_err(err)
}
