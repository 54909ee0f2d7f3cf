//! `bundle create|import|list` through the real binary and real podman, with no network
//! (`unshare --net`): round trip with images removed in between, corrupt and truncated bundles load nothing, progress on a
//! terminal, plain lines otherwise.

use crate::support::podman::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_prometheus-stack");

struct Case {
    dir: tempfile::TempDir,
    config: PathBuf,
    /// A busybox image with a marker file, and a tiny image with files only.
    images: [String; 2],
    marker: String,
    artifact_dir: PathBuf,
}

impl Drop for Case {
    fn drop(&mut self) {
        for i in &self.images {
            let _ = podman(&["rmi", "-f", i]);
        }
    }
}

/// Two fresh images and a config whose units need them, plus an artifact folder.
/// podman 4.3's image store races when one test removes images while another loads
/// images sharing a layer ("layer not known"): the tests of this file take turns.
fn podman_turn() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

fn case(tag: &str) -> Case {
    require_podman();
    let dir = tempfile::tempdir().unwrap();
    let id = format!("{}{tag}", std::process::id());
    let marker = format!("marker-{id}");
    let images = [
        format!("localhost/pstest-bundle-a-{id}:1"),
        format!("localhost/pstest-bundle-b-{id}:1"),
    ];
    build_busybox_image(&images[0], &[("/marker", marker.as_bytes())]);
    build_files_image(&images[1], &[("/hello.txt", b"hello\n")]);
    let artifact_dir = dir.path().join("opt/tool");
    std::fs::create_dir_all(artifact_dir.join("lib")).unwrap();
    std::fs::write(artifact_dir.join("tool.sh"), "#!/bin/sh\necho tool\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        artifact_dir.join("tool.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(artifact_dir.join("lib/data.bin"), vec![7u8; 300_000]).unwrap();
    let config = dir.path().join("stack.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[stack]
name = "bt{id}"
data_dir = "{data}"
[services.web]
runtime = "podman"
image = "{a}"
command = ["/bin/cat", "/marker"]
[services.files]
runtime = "podman"
image = "{b}"
[services.web2]
runtime = "podman"
image = "{a}"
[bundle]
artifacts = ["{art}"]
"#,
            data = dir.path().join("data").display(),
            a = images[0],
            b = images[1],
            art = artifact_dir.display(),
        ),
    )
    .unwrap();
    Case {
        dir,
        config,
        images,
        marker,
        artifact_dir,
    }
}

fn cli(config: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The same command in a network namespace with no interface but a down loopback.
fn offline(config: &Path, args: &[&str]) -> Output {
    let o = Command::new("unshare")
        .arg("--net")
        .arg(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("unshare (util-linux) runs");
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("unshare failed"),
        "unshare --net needs root: {}",
        text(&o)
    );
    o
}

fn create(c: &Case) -> PathBuf {
    let out = c.dir.path().join("b.tar");
    let o = offline(&c.config, &["bundle", "create", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("2 images, 2 artifact files"),
        "{}",
        text(&o)
    );
    out
}

fn rmi(c: &Case) {
    for i in &c.images {
        podman_ok(&["rmi", "-f", i]);
        assert!(!image_exists(i));
    }
}

/// Offset and size of a bundle entry's data.
fn entry(bundle: &Path, name_contains: &str) -> (u64, u64) {
    let mut ar = tar::Archive::new(std::fs::File::open(bundle).unwrap());
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        if e.path().unwrap().to_string_lossy().contains(name_contains) {
            return (e.raw_file_position(), e.header().size().unwrap());
        }
    }
    panic!("no entry {name_contains}");
}

#[test]
fn create_remove_import_run() {
    let _turn = podman_turn();
    let c = case("rt");
    let b = create(&c);
    // The manifest lists every entry with sha256 and size.
    let mut ar = tar::Archive::new(std::fs::File::open(&b).unwrap());
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.last().map(String::as_str), Some("manifest.json"));
    assert_eq!(names.len(), 5, "{names:?}");

    rmi(&c);
    std::fs::remove_dir_all(&c.artifact_dir).unwrap();
    let l = cli(&c.config, &["bundle", "list"]);
    assert_eq!(l.status.code(), Some(1), "{}", text(&l));
    assert_eq!(text(&l).matches("MISSING").count(), 3, "{}", text(&l));

    // Plain lines when not on a terminal; no network at all.
    let o = offline(&c.config, &["bundle", "import", b.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(!t.contains('\r'), "no bar off a terminal: {t:?}");
    assert!(t.contains(&format!("loaded {}", c.images[0])), "{t}");
    assert!(t.contains(&format!("loaded {}", c.images[1])), "{t}");
    for i in &c.images {
        assert!(image_exists(i), "{i} loaded");
    }
    let tool = c.artifact_dir.join("tool.sh");
    let run = Command::new(&tool).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stdout), "tool\n");
    assert_eq!(
        std::fs::read(c.artifact_dir.join("lib/data.bin")).unwrap(),
        vec![7u8; 300_000]
    );
    let l = cli(&c.config, &["bundle", "list"]);
    assert!(l.status.success(), "{}", text(&l));
    // The imported image runs (never pulled).
    let out = podman_ok(&[
        "run",
        "--rm",
        "--pull=never",
        &c.images[0],
        "/bin/cat",
        "/marker",
    ]);
    assert_eq!(out, c.marker);
}

#[test]
fn corrupt_bundle_loads_nothing_and_names_the_entry() {
    let _turn = podman_turn();
    let c = case("bad");
    let b = create(&c);
    rmi(&c);
    // One flipped byte in the middle of the second image.
    let (off, size) = entry(&b, "images/01-");
    let mut data = std::fs::read(&b).unwrap();
    data[(off + size / 2) as usize] ^= 0xff;
    std::fs::write(&b, data).unwrap();
    let o = cli(&c.config, &["bundle", "import", b.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let t = text(&o);
    assert!(t.contains("corrupt"), "{t}");
    assert!(t.contains("images/01-"), "names the bad entry: {t}");
    assert!(t.contains("nothing was loaded"), "{t}");
    for i in &c.images {
        assert!(
            !image_exists(i),
            "{i} must not be loaded from a corrupt bundle"
        );
    }
}

#[test]
fn truncated_bundle_loads_nothing_and_names_the_entry() {
    let _turn = podman_turn();
    let c = case("trunc");
    let b = create(&c);
    rmi(&c);
    std::fs::remove_dir_all(&c.artifact_dir).unwrap();
    let (off, size) = entry(&b, "images/01-");
    let f = std::fs::OpenOptions::new().write(true).open(&b).unwrap();
    f.set_len(off + size / 3).unwrap();
    let o = cli(&c.config, &["bundle", "import", b.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let t = text(&o);
    assert!(t.contains("truncated"), "{t}");
    assert!(t.contains("images/01-"), "names the bad entry: {t}");
    for i in &c.images {
        assert!(
            !image_exists(i),
            "{i} must not be loaded from a truncated bundle"
        );
    }
    assert!(!c.artifact_dir.exists(), "no artifact restored");
}

#[test]
fn progress_bar_on_a_terminal() {
    let _turn = podman_turn();
    let c = case("tty");
    let b = create(&c);
    rmi(&c);
    // `script` gives the command a pseudo-terminal.
    let cmd = format!(
        "{BIN} --config {} bundle import {}",
        c.config.display(),
        b.display()
    );
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .expect("script (bsdutils) runs");
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("\r"), "bar redrawn in place: {t:?}");
    assert!(t.contains("100%"), "{t:?}");
    assert!(t.contains(&format!("loading {} [", c.images[0])), "{t:?}");
    for i in &c.images {
        assert!(image_exists(i));
    }
}

#[test]
fn create_refuses_missing_images_and_leaves_no_file() {
    let _turn = podman_turn();
    let c = case("miss");
    podman_ok(&["rmi", "-f", &c.images[1]]);
    let out = c.dir.path().join("b.tar");
    let o = cli(&c.config, &["bundle", "create", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let t = text(&o);
    assert!(t.contains(&c.images[1]), "names the missing image: {t}");
    assert!(t.contains("never pulls"), "{t}");
    let left: Vec<_> = std::fs::read_dir(c.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("b.tar"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
