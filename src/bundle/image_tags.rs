//! The image names a `podman save` docker-archive will create when loaded.
//!
//! `podman load` tags whatever the archive's `manifest.json` (and the legacy
//! `repositories` file) lists, so a bundle whose entry claims "image A" could also
//! retag a trusted name such as `docker.io/library/postgres:17`. `verify` reads the names
//! during its one hashing pass (no second read of a multi-GiB entry), and `import`
//! refuses any entry whose names are not exactly the manifest's one image.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};

/// The archive's own index files are small; a bigger one is not podman's.
const MAX_INDEX: u64 = 1 << 20;

#[derive(Deserialize)]
struct ArchiveImage {
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
}

/// Reads the whole docker-archive from `r` (so a wrapping hasher sees every byte) and
/// returns every name it would tag; `Err` when it is not a tar or its index is malformed.
pub fn read_names(r: &mut impl Read) -> io::Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    {
        let mut ar = tar::Archive::new(&mut *r);
        for entry in ar.entries()? {
            let mut e = entry?;
            let path = e.path()?.to_string_lossy().into_owned();
            match path.trim_start_matches("./") {
                "manifest.json" => names.extend(manifest_names(&index(&mut e, &path)?)?),
                "repositories" => names.extend(repositories_names(&index(&mut e, &path)?)?),
                _ => {
                    io::copy(&mut e, &mut io::sink())?;
                }
            }
        }
    }
    // The tar's end-of-archive padding still belongs to the entry's bytes.
    io::copy(r, &mut io::sink())?;
    Ok(names)
}

fn index(e: &mut impl Read, path: &str) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    e.take(MAX_INDEX + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_INDEX {
        return Err(invalid(format!("{path} is over {MAX_INDEX} bytes")));
    }
    Ok(buf)
}

fn manifest_names(bytes: &[u8]) -> io::Result<Vec<String>> {
    let images: Vec<ArchiveImage> = serde_json::from_slice(bytes)
        .map_err(|e| invalid(format!("manifest.json of the image archive: {e}")))?;
    Ok(images
        .into_iter()
        .flat_map(|i| i.repo_tags.unwrap_or_default())
        .collect())
}

/// `{"repo": {"tag": "id"}}`, the pre-manifest docker format.
fn repositories_names(bytes: &[u8]) -> io::Result<Vec<String>> {
    let repos: BTreeMap<String, BTreeMap<String, String>> = serde_json::from_slice(bytes)
        .map_err(|e| invalid(format!("repositories of the image archive: {e}")))?;
    Ok(repos
        .into_iter()
        .flat_map(|(repo, tags)| tags.into_keys().map(move |t| format!("{repo}:{t}")))
        .collect())
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(files: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, body) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, path, body.as_bytes()).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn names_from_manifest_and_repositories() {
        let a = archive(&[
            ("layer.tar", "xx"),
            ("manifest.json", r#"[{"RepoTags":["localhost/a:1"]}]"#),
            (
                "repositories",
                r#"{"docker.io/library/postgres":{"17":"abc"}}"#,
            ),
        ]);
        let names = read_names(&mut a.as_slice()).unwrap();
        let want = ["docker.io/library/postgres:17", "localhost/a:1"];
        assert_eq!(names.into_iter().collect::<Vec<_>>(), want);
    }

    #[test]
    fn not_a_tar_is_an_error() {
        assert!(read_names(&mut vec![b'x'; 1024].as_slice()).is_err());
        let a = archive(&[("manifest.json", "{not json")]);
        assert!(read_names(&mut a.as_slice()).is_err());
    }
}
