//! `bundle create`: `podman save` of every image the plan needs plus `[bundle].artifacts`,
//! then the manifest, into OUT written atomically (OUT.partial-PID, then rename).

use super::manifest::{Content, FileEntry, HashingReader, Manifest, FORMAT, MANIFEST};
use super::progress::mib;
use super::{needed_images, BundleError};
use crate::plan::Plan;
use crate::runtime::podman::image;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// What was written.
#[derive(Debug)]
pub struct Created {
    pub path: PathBuf,
    pub manifest: Manifest,
    pub bytes: u64,
}

/// Writes the bundle for `plan` to `out`; on any error nothing is left at `out`.
pub fn create(plan: &Plan, out: &Path) -> Result<Created, BundleError> {
    let images = needed_images(plan);
    let mut missing = Vec::new();
    for (img, _) in &images {
        if !image::present_blocking(img)? {
            missing.push(img.clone());
        }
    }
    if !missing.is_empty() {
        return Err(BundleError::ImagesMissing { images: missing });
    }
    let artifacts = collect_artifacts(&plan.bundle_artifacts)?;

    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fname = out
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle.tar".into());
    let tmp = dir.join(format!(".{fname}.partial-{}", std::process::id()));
    let work = dir.join(format!(".{fname}.images-{}", std::process::id()));
    let result = write_bundle(plan, &images, &artifacts, &tmp, &work);
    let _ = std::fs::remove_dir_all(&work);
    match result {
        Ok(manifest) => {
            let bytes = crate::publish::publish(&tmp, out).map_err(|e| {
                io(
                    format!("renaming {} to {}", tmp.display(), out.display()),
                    e,
                )
            })?;
            Ok(Created {
                path: out.to_path_buf(),
                manifest,
                bytes,
            })
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn io(what: String, source: std::io::Error) -> BundleError {
    BundleError::Io { what, source }
}

/// One native file to carry.
struct ArtifactFile {
    source: PathBuf,
    mode: u32,
    size: u64,
}

/// Expands `[bundle].artifacts` (files, or folders walked recursively) to files.
fn collect_artifacts(list: &[PathBuf]) -> Result<Vec<ArtifactFile>, BundleError> {
    let mut out = Vec::new();
    let missing: Vec<PathBuf> = list.iter().filter(|p| !p.exists()).cloned().collect();
    if !missing.is_empty() {
        return Err(BundleError::ArtifactsMissing { paths: missing });
    }
    for p in list {
        walk(p, &mut out)?;
    }
    Ok(out)
}

fn walk(p: &Path, out: &mut Vec<ArtifactFile>) -> Result<(), BundleError> {
    let md = std::fs::symlink_metadata(p).map_err(|e| io(format!("reading {}", p.display()), e))?;
    if md.file_type().is_symlink() {
        return Err(BundleError::Unsupported {
            path: p.to_path_buf(),
            what: "a symbolic link",
        });
    }
    if md.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
            .map_err(|e| io(format!("reading folder {}", p.display()), e))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(|e| io(format!("reading folder {}", p.display()), e))?;
        entries.sort();
        for e in entries {
            walk(&e, out)?;
        }
    } else if md.is_file() {
        out.push(ArtifactFile {
            source: p.to_path_buf(),
            mode: md.permissions().mode() & 0o7777,
            size: md.len(),
        });
    } else {
        return Err(BundleError::Unsupported {
            path: p.to_path_buf(),
            what: "not a regular file or folder",
        });
    }
    Ok(())
}

/// Tar path of an image entry.
fn image_entry(i: usize, name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("images/{i:02}-{safe}.tar")
}

fn write_bundle(
    plan: &Plan,
    images: &[(String, Vec<String>)],
    artifacts: &[ArtifactFile],
    tmp: &Path,
    work: &Path,
) -> Result<Manifest, BundleError> {
    let file = File::create(tmp).map_err(|e| io(format!("creating {}", tmp.display()), e))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, file));
    tar.mode(tar::HeaderMode::Deterministic);
    let mut files = Vec::new();
    std::fs::create_dir_all(work).map_err(|e| io(format!("creating {}", work.display()), e))?;

    for (i, (img, units)) in images.iter().enumerate() {
        files.push(add_image(&mut tar, work, i, img, units)?);
    }
    for a in artifacts {
        files.push(add_artifact(&mut tar, a)?);
    }
    let manifest = Manifest {
        format: FORMAT,
        created_by: format!("prometheus-stack {}", env!("CARGO_PKG_VERSION")),
        stack: plan.stack.name.clone(),
        files,
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    let mut h = tar::Header::new_gnu();
    h.set_size(json.len() as u64);
    h.set_mode(0o644);
    tar.append_data(&mut h, MANIFEST, json.as_slice())
        .map_err(|e| io(format!("writing {}", tmp.display()), e))?;
    let mut w = tar
        .into_inner()
        .map_err(|e| io(format!("writing {}", tmp.display()), e))?;
    w.flush()
        .map_err(|e| io(format!("writing {}", tmp.display()), e))?;
    let f = w
        .into_inner()
        .map_err(|e| io(format!("writing {}", tmp.display()), e.into_error()))?;
    f.sync_all()
        .map_err(|e| io(format!("syncing {}", tmp.display()), e))?;
    Ok(manifest)
}

/// `podman save`s one image into the work dir, then appends it.
fn add_image<W: Write>(
    tar: &mut tar::Builder<W>,
    work: &Path,
    i: usize,
    img: &str,
    units: &[String],
) -> Result<FileEntry, BundleError> {
    let saved = work.join(format!("{i}.tar"));
    let saved_s = saved.to_string_lossy().into_owned();
    println!("saving image {img} (units: {})", units.join(", "));
    crate::runtime::podman::image::save_blocking(img, &saved_s)?;
    let path = image_entry(i, img);
    let what = format!("adding image {img}");
    let (sha256, size) = append_file(tar, &saved, &path, 0o644, &what)?;
    let _ = std::fs::remove_file(&saved);
    Ok(FileEntry {
        path,
        sha256,
        size,
        content: Content::Image {
            image: img.to_string(),
        },
    })
}

/// Appends one native artifact; refuses a file that changed size since it was listed.
fn add_artifact<W: Write>(
    tar: &mut tar::Builder<W>,
    a: &ArtifactFile,
) -> Result<FileEntry, BundleError> {
    let rel = a.source.strip_prefix("/").unwrap_or(&a.source);
    let path = format!("artifacts/{}", rel.display());
    let what = format!("adding artifact {}", a.source.display());
    let (sha256, size) = append_file(tar, &a.source, &path, a.mode, &what)?;
    if size != a.size {
        return Err(BundleError::Changed {
            path: a.source.clone(),
        });
    }
    Ok(FileEntry {
        path,
        sha256,
        size,
        content: Content::Artifact {
            target: a.source.clone(),
            mode: a.mode,
        },
    })
}

/// Appends one file, hashing it on the way in.
fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    src: &Path,
    path: &str,
    mode: u32,
    what: &str,
) -> Result<(String, u64), BundleError> {
    let f = File::open(src).map_err(|e| io(format!("{what}: opening {}", src.display()), e))?;
    let len = f
        .metadata()
        .map_err(|e| io(format!("{what}: {}", src.display()), e))?
        .len();
    let mut h = tar::Header::new_gnu();
    h.set_size(len);
    h.set_mode(mode);
    let mut r = HashingReader::new(f);
    tar.append_data(&mut h, path, &mut r)
        .map_err(|e| io(format!("{what} ({})", mib(len)), e))?;
    println!("  added {path} ({})", mib(len));
    Ok(r.finish())
}
