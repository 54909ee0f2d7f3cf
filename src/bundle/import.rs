//! `bundle import`: verify everything first, then load each image through `podman load`
//! (streamed from the bundle, with progress), then restore the native artifacts the
//! config lists.

use super::manifest::{Content, HashingReader};
use super::progress::{mib, Progress};
use super::restore;
use super::verify::{verify, Located};
use super::BundleError;
use crate::runtime::podman::{image, podman_bin};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
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
            let confined = match restore::confine(target, allowed_artifacts) {
                Ok(Some(c)) => c,
                Ok(None) => {
                    println!(
                        "skipped artifact {} (not under [bundle].artifacts of this config)",
                        target.display()
                    );
                    done.skipped.push(target.clone());
                    continue;
                }
                Err(why) => {
                    return Err(BundleError::Corrupt {
                        file: file.display().to_string(),
                        problems: vec![format!("{}: target {}: {why}", fe.path, target.display())],
                    })
                }
            };
            let src = restore::Source {
                reader: section(file, v.entries[&fe.path])?,
                sha256: fe.sha256.clone(),
                size: fe.size,
            };
            restore::restore(target, &confined, *mode, src)?;
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
    // verify checked the archive's names; this catches a podman that reads it otherwise.
    let loaded = loaded_names(&String::from_utf8_lossy(&out.stdout));
    if loaded.iter().any(|n| n != name) {
        return Err(load_err(format!(
            "podman load tagged [{}], not just {name}",
            loaded.join(", ")
        )));
    }
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

/// Names from `podman load`'s "Loaded image: NAME" lines (several per line after
/// "Loaded image(s):", comma-separated, in some podman versions).
fn loaded_names(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.starts_with("Loaded image"))
        })
        .flat_map(|(_, v)| v.split(',').map(|n| n.trim().to_string()))
        .filter(|n| !n.is_empty() && !n.starts_with("sha256:"))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn loaded_names_from_podman_output() {
        let out = "Loaded image: localhost/a:1\nLoaded image(s): docker.io/b:2, c:3\n";
        assert_eq!(
            super::loaded_names(out),
            ["localhost/a:1", "docker.io/b:2", "c:3"]
        );
    }
}
