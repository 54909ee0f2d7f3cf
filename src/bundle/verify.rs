//! Reads a whole bundle, hashing every entry, and compares with its manifest — before
//! anything is loaded.

use super::image_tags;
use super::manifest::{Content, HashingReader, Manifest, FORMAT, MANIFEST};
use super::progress::Progress;
use super::BundleError;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Where an entry's data lies in the bundle file.
#[derive(Debug, Clone, Copy)]
pub struct Located {
    pub offset: u64,
    pub size: u64,
}

/// A bundle whose every entry matched the manifest.
#[derive(Debug)]
pub struct Verified {
    pub manifest: Manifest,
    pub entries: BTreeMap<String, Located>,
}

const MAX_MANIFEST: u64 = 64 << 20;

/// What one pass over the tar found: each entry's hash, size and place, and the manifest.
struct Scan {
    seen: BTreeMap<String, (String, u64, Located)>,
    /// For image entries: the names `podman load` would tag, or why they are unreadable.
    image_names: BTreeMap<String, Result<BTreeSet<String>, String>>,
    manifest: Option<Vec<u8>>,
    /// The last entry read, for "no manifest after X".
    last: String,
}

/// Checks every entry's size and sha256 against the manifest; names every bad entry.
/// With `progress`, each entry's hashing is reported (a bar on a terminal).
pub fn verify(file: &Path, progress: bool) -> Result<Verified, BundleError> {
    let fname = file.display().to_string();
    let Scan {
        mut seen,
        image_names,
        manifest,
        last,
    } = scan(file, &fname, progress)?;
    let Some(mb) = manifest else {
        return Err(BundleError::NoManifest { file: fname, last });
    };
    let manifest: Manifest = serde_json::from_slice(&mb).map_err(|e| BundleError::BadManifest {
        file: fname.clone(),
        reason: e.to_string(),
    })?;
    if manifest.format != FORMAT {
        return Err(BundleError::BadManifest {
            file: fname,
            reason: format!("format {} (this version reads {FORMAT})", manifest.format),
        });
    }
    let mut problems = Vec::new();
    let mut entries = BTreeMap::new();
    for fe in &manifest.files {
        match seen.remove(&fe.path) {
            None => problems.push(format!("{}: listed in the manifest but missing", fe.path)),
            Some((_, n, _)) if n != fe.size => {
                problems.push(format!("{}: size {n}, manifest says {}", fe.path, fe.size))
            }
            Some((sha, _, _)) if sha != fe.sha256 => problems.push(format!(
                "{}: sha256 {sha}, manifest says {}",
                fe.path, fe.sha256
            )),
            Some((_, _, loc)) => {
                if let Content::Image { image } = &fe.content {
                    problems.extend(wrong_names(&fe.path, image, image_names.get(&fe.path)));
                }
                entries.insert(fe.path.clone(), loc);
            }
        }
    }
    for extra in seen.keys() {
        problems.push(format!("{extra}: not listed in the manifest"));
    }
    if !problems.is_empty() {
        return Err(BundleError::Corrupt {
            file: fname,
            problems,
        });
    }
    Ok(Verified { manifest, entries })
}

fn truncated(file: &str, entry: &str, reason: impl ToString) -> BundleError {
    BundleError::Truncated {
        file: file.to_string(),
        entry: entry.to_string(),
        reason: reason.to_string(),
    }
}

/// Reads the whole tar once: hashes every entry, keeps the manifest's bytes.
fn scan(file: &Path, fname: &str, progress: bool) -> Result<Scan, BundleError> {
    let f = File::open(file).map_err(|e| BundleError::Io {
        what: format!("opening bundle {fname}"),
        source: e,
    })?;
    let mut ar = tar::Archive::new(f);
    let mut scan = Scan {
        seen: BTreeMap::new(),
        image_names: BTreeMap::new(),
        manifest: None,
        last: String::from("(none)"),
    };
    let entries = ar
        .entries()
        .map_err(|e| truncated(fname, "(start of file)", e))?;
    for entry in entries {
        let after = format!("the entry after {}", scan.last);
        let mut entry = entry.map_err(|e| truncated(fname, &after, e))?;
        let path = entry
            .path()
            .map_err(|e| truncated(fname, &after, e))?
            .to_string_lossy()
            .into_owned();
        let size = entry.header().size().unwrap_or(0);
        let offset = entry.raw_file_position();
        if path == MANIFEST {
            scan.manifest = Some(read_manifest(&mut entry, fname, size)?);
        } else {
            let bar = progress.then(|| Progress::start(format!("verifying {path}"), size));
            let mut r = Metered {
                inner: HashingReader::new(&mut entry),
                bar,
            };
            if path.starts_with("images/") {
                let names = image_tags::read_names(&mut r).map_err(|e| e.to_string());
                scan.image_names.insert(path.clone(), names);
            }
            let (sha, n) = hash_rest(r, fname, &path)?;
            if n < size {
                return Err(truncated(
                    fname,
                    &path,
                    format!("{n} of {size} bytes present"),
                ));
            }
            scan.seen
                .insert(path.clone(), (sha, n, Located { offset, size }));
        }
        scan.last = path;
    }
    Ok(scan)
}

fn read_manifest(entry: &mut impl Read, fname: &str, size: u64) -> Result<Vec<u8>, BundleError> {
    if size > MAX_MANIFEST {
        return Err(BundleError::BadManifest {
            file: fname.to_string(),
            reason: format!("{MANIFEST} is {size} bytes"),
        });
    }
    let mut buf = Vec::with_capacity(size as usize);
    entry
        .read_to_end(&mut buf)
        .map_err(|e| truncated(fname, MANIFEST, e))?;
    if (buf.len() as u64) < size {
        let reason = format!("{} of {size} bytes present", buf.len());
        return Err(truncated(fname, MANIFEST, reason));
    }
    Ok(buf)
}

/// A hashing reader that also moves a progress bar.
struct Metered<R> {
    inner: HashingReader<R>,
    bar: Option<Progress>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(b) = self.bar.as_mut() {
            b.update(self.inner.count());
        }
        Ok(n)
    }
}

/// Reads what is left of one entry; its sha256 and total length.
fn hash_rest<R: Read>(
    mut r: Metered<R>,
    fname: &str,
    path: &str,
) -> Result<(String, u64), BundleError> {
    std::io::copy(&mut r, &mut std::io::sink()).map_err(|e| truncated(fname, path, e))?;
    if let Some(b) = r.bar {
        b.finish(&format!("hashed {path}"));
    }
    Ok(r.inner.finish())
}

/// An image entry must tag exactly the one name the manifest gives it.
fn wrong_names(
    path: &str,
    image: &str,
    names: Option<&Result<BTreeSet<String>, String>>,
) -> Option<String> {
    match names {
        None => Some(format!("{path}: not under images/, cannot hold {image}")),
        Some(Err(e)) => Some(format!("{path}: not a readable image archive: {e}")),
        Some(Ok(n)) if n.len() == 1 && n.contains(image) => None,
        Some(Ok(n)) => Some(format!(
            "{path}: the manifest says image {image}, but loading it would tag [{}]",
            n.iter().cloned().collect::<Vec<_>>().join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::manifest::{Content, FileEntry};
    use sha2::{Digest, Sha256};

    fn entry(path: &str, data: &[u8]) -> FileEntry {
        FileEntry {
            path: path.into(),
            sha256: hex::encode(Sha256::digest(data)),
            size: data.len() as u64,
            content: Content::Artifact {
                target: format!("/opt/{path}").into(),
                mode: 0o644,
            },
        }
    }

    /// Writes a bundle with `data` entries and a manifest listing `listed`.
    fn bundle(
        data: &[(&str, &[u8])],
        listed: Vec<FileEntry>,
        format: u32,
    ) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut b = tar::Builder::new(f.reopen().unwrap());
        for (p, d) in data {
            let mut h = tar::Header::new_gnu();
            h.set_size(d.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, p, *d).unwrap();
        }
        let m = serde_json::to_vec(&Manifest {
            format,
            created_by: "t".into(),
            stack: "s".into(),
            files: listed,
        })
        .unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(m.len() as u64);
        b.append_data(&mut h, MANIFEST, m.as_slice()).unwrap();
        b.finish().unwrap();
        f
    }

    #[test]
    fn good_bundle_verifies_with_offsets() {
        let f = bundle(
            &[("a", b"alpha"), ("b", b"beta")],
            vec![entry("a", b"alpha"), entry("b", b"beta")],
            FORMAT,
        );
        let v = verify(f.path(), false).unwrap();
        let loc = v.entries["b"];
        let all = std::fs::read(f.path()).unwrap();
        assert_eq!(
            &all[loc.offset as usize..(loc.offset + loc.size) as usize],
            b"beta"
        );
    }

    #[test]
    fn every_mismatch_is_named() {
        let mut wrong = entry("a", b"alpha");
        wrong.sha256 = hex::encode(Sha256::digest(b"other"));
        let f = bundle(
            &[("a", b"alpha"), ("extra", b"x")],
            vec![wrong, entry("gone", b"g")],
            FORMAT,
        );
        let e = verify(f.path(), false).unwrap_err().to_string();
        assert!(e.contains("a: sha256"), "{e}");
        assert!(
            e.contains("gone: listed in the manifest but missing"),
            "{e}"
        );
        assert!(e.contains("extra: not listed"), "{e}");
    }

    #[test]
    fn no_manifest_and_unknown_format_are_refused() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut b = tar::Builder::new(f.reopen().unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        b.append_data(&mut h, "a", &b"x"[..]).unwrap();
        b.finish().unwrap();
        let e = verify(f.path(), false).unwrap_err().to_string();
        assert!(
            e.contains("no manifest.json") && e.contains("after a"),
            "{e}"
        );
        let f = bundle(&[], vec![], 99);
        let e = verify(f.path(), false).unwrap_err().to_string();
        assert!(e.contains("format 99"), "{e}");
    }
}
