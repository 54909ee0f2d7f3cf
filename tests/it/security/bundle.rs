//! `bundle import` runs as root on a bundle someone else made: hand-made malicious
//! bundles must not write outside `[bundle].artifacts`, follow planted links, keep
//! setuid bits, or tag images the manifest does not name (security issue, point 6).

use prometheus_stack::bundle::{self, Content, FileEntry, Manifest, MANIFEST};
use sha2::{Digest, Sha256};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

/// One tar entry and what the manifest says about it.
struct Item {
    path: String,
    body: Vec<u8>,
    content: Content,
}

fn artifact(target: &Path, mode: u32, body: &[u8]) -> Item {
    Item {
        path: format!("artifacts/{}", target.display()),
        body: body.to_vec(),
        content: Content::Artifact {
            target: target.to_path_buf(),
            mode,
        },
    }
}

fn write_bundle(dir: &Path, items: &[Item]) -> PathBuf {
    let file = dir.join("evil.bundle");
    let mut tar = tar::Builder::new(std::fs::File::create(&file).unwrap());
    let mut files = Vec::new();
    for it in items {
        let mut h = tar::Header::new_gnu();
        h.set_size(it.body.len() as u64);
        h.set_mode(0o644);
        // append_data refuses `..`; the raw header path is what a hostile bundle carries.
        h.as_gnu_mut().unwrap().name[..it.path.len()].copy_from_slice(it.path.as_bytes());
        h.set_cksum();
        tar.append(&h, it.body.as_slice()).unwrap();
        files.push(FileEntry {
            path: it.path.clone(),
            sha256: hex::encode(Sha256::digest(&it.body)),
            size: it.body.len() as u64,
            content: it.content.clone(),
        });
    }
    let manifest = Manifest {
        format: 1,
        created_by: "an attacker".into(),
        stack: "evil".into(),
        files,
    };
    let json = serde_json::to_vec(&manifest).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(json.len() as u64);
    h.set_mode(0o644);
    tar.append_data(&mut h, MANIFEST, json.as_slice()).unwrap();
    tar.finish().unwrap();
    file
}

struct Case {
    _tmp: tempfile::TempDir,
    allowed: PathBuf,
    outside: PathBuf,
    dir: PathBuf,
}

fn case() -> Case {
    let tmp = tempfile::tempdir().unwrap();
    let allowed = tmp.path().join("native");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&allowed).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("victim"), "original").unwrap();
    Case {
        dir: tmp.path().to_path_buf(),
        _tmp: tmp,
        allowed,
        outside,
    }
}

fn import(c: &Case, items: &[Item]) -> Result<bundle::Imported, String> {
    let file = write_bundle(&c.dir, items);
    bundle::import(&file, std::slice::from_ref(&c.allowed)).map_err(|e| e.to_string())
}

fn victim_untouched(c: &Case) {
    let v = c.outside.join("victim");
    assert_eq!(std::fs::read_to_string(&v).unwrap(), "original");
    let entries: Vec<_> = std::fs::read_dir(&c.outside).unwrap().collect();
    assert_eq!(
        entries.len(),
        1,
        "something was written outside: {entries:?}"
    );
}

#[test]
fn dot_dot_in_a_target_is_refused() {
    let c = case();
    let target = c.allowed.join("../outside/victim");
    let err = import(&c, &[artifact(&target, 0o644, b"pwned")]).unwrap_err();
    assert!(err.contains("contains `..`"), "{err}");
    victim_untouched(&c);
}

#[test]
fn a_target_outside_the_allowed_folders_is_not_written() {
    let c = case();
    let target = c.outside.join("victim");
    let done = import(&c, &[artifact(&target, 0o644, b"pwned")]).unwrap();
    assert_eq!(done.skipped, [target]);
    victim_untouched(&c);
}

#[test]
fn a_symlinked_folder_is_not_followed() {
    let c = case();
    symlink(&c.outside, c.allowed.join("lib")).unwrap();
    let target = c.allowed.join("lib/victim");
    let err = import(&c, &[artifact(&target, 0o644, b"pwned")]).unwrap_err();
    assert!(err.contains("symlink"), "{err}");
    victim_untouched(&c);
}

#[test]
fn a_symlink_at_the_target_is_replaced_not_followed() {
    let c = case();
    let target = c.allowed.join("tool");
    symlink(c.outside.join("victim"), &target).unwrap();
    import(&c, &[artifact(&target, 0o644, b"new tool")]).unwrap();
    victim_untouched(&c);
    let meta = std::fs::symlink_metadata(&target).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(std::fs::read(&target).unwrap(), b"new tool");
}

#[test]
fn setuid_and_world_writable_modes_are_masked() {
    let c = case();
    let exe = c.allowed.join("bin/exe");
    let data = c.allowed.join("share/data");
    let items = [
        artifact(&exe, 0o4777, b"#!/bin/sh\n"),
        artifact(&data, 0o666, b"d"),
    ];
    import(&c, &items).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&exe), 0o755);
    assert_eq!(mode(&data), 0o644);
}

/// A docker-archive whose index tags `names`.
fn image_archive(names: &[&str]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let index = serde_json::json!([{ "Config": "c.json", "RepoTags": names, "Layers": [] }]);
    let index = index.to_string();
    let mut h = tar::Header::new_gnu();
    h.set_size(index.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "manifest.json", index.as_bytes())
        .unwrap();
    b.into_inner().unwrap()
}

#[test]
fn an_image_that_would_retag_another_name_is_refused_before_loading() {
    let c = case();
    let evil = Item {
        path: "images/00-pstest-evil.tar".into(),
        body: image_archive(&["localhost/pstest-evil:1", "docker.io/library/postgres:17"]),
        content: Content::Image {
            image: "localhost/pstest-evil:1".into(),
        },
    };
    let err = import(&c, &[evil]).unwrap_err();
    assert!(err.contains("nothing was loaded"), "{err}");
    assert!(
        err.contains("would tag [docker.io/library/postgres:17, localhost/pstest-evil:1]"),
        "{err}"
    );
}

#[test]
fn an_image_entry_that_is_not_an_archive_is_refused() {
    let c = case();
    let junk = Item {
        path: "images/00-junk.tar".into(),
        body: vec![b'x'; 2048],
        content: Content::Image {
            image: "localhost/pstest-junk:1".into(),
        },
    };
    let err = import(&c, &[junk]).unwrap_err();
    assert!(err.contains("not a readable image archive"), "{err}");
}
