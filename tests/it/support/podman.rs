//! Helpers for podman tests: locally built images (never pulled), podman calls, unique
//! names. Missing tools fail the test with the command that installs them.
#![allow(dead_code)]

use crate::support::daemon::TestDaemon;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Static busybox image shared by the podman tests (built once, idempotently).
pub const BUSYBOX: &str = "localhost/pstest-busybox:1";

/// Fails the test unless podman, runc, catatonit and busybox-static are installed.
pub fn require_podman() {
    let missing: Vec<&str> = [
        ("podman", "/usr/bin/podman"),
        ("runc", "/usr/sbin/runc"),
        ("catatonit", "/usr/libexec/podman/catatonit"),
        ("busybox-static", "/bin/busybox"),
    ]
    .iter()
    .filter(|(_, p)| !Path::new(p).exists())
    .map(|(n, _)| *n)
    .collect();
    assert!(
        missing.is_empty(),
        "missing {missing:?}: run tests/setup.sh (it installs podman, runc, catatonit, busybox-static and writes /etc/containers/containers.conf)"
    );
}

/// Runs podman; returns its output whatever the status.
pub fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("podman runs")
}

/// Runs podman and returns stdout; panics with stderr on failure.
pub fn podman_ok(args: &[&str]) -> String {
    let o = podman(args);
    assert!(
        o.status.success(),
        "podman {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Whether the image is in local storage.
pub fn image_exists(name: &str) -> bool {
    podman(&["image", "exists", name]).status.success()
}

/// Builds `name` from a rootfs with static busybox (all applets linked) plus `files`,
/// through `podman import`; does nothing when it exists. Serialized across test binaries.
pub fn build_busybox_image(name: &str, files: &[(&str, &[u8])]) {
    require_podman();
    let lock = std::fs::File::create("/tmp/pstest-podman-images.lock").expect("lock file");
    let _guard = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("flock");
    if image_exists(name) {
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    for d in ["bin", "tmp", "www", "data", "etc"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", r.join("bin/busybox")).unwrap();
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = symlink("busybox", r.join("bin").join(applet));
        }
    }
    std::fs::write(r.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap();
    std::fs::write(r.join("www/index.html"), "ok\n").unwrap();
    for (path, data) in files {
        let p = r.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    import_rootfs(r, name);
}

/// A tiny image with no binary at all: just the given files.
pub fn build_files_image(name: &str, files: &[(&str, &[u8])]) {
    require_podman();
    if image_exists(name) {
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    for (path, data) in files {
        let p = root.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    import_rootfs(root.path(), name);
}

fn import_rootfs(root: &Path, name: &str) {
    let mut tar = Command::new("tar")
        .args(["-C"])
        .arg(root)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .expect("tar runs");
    let out = Command::new("podman")
        .args(["import", "--quiet", "-", name])
        .stdin(tar.stdout.take().expect("piped"))
        .output()
        .expect("podman import runs");
    assert!(tar.wait().unwrap().success(), "tar of {}", root.display());
    assert!(
        out.status.success(),
        "podman import {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The shared busybox image.
pub fn busybox() -> &'static str {
    build_busybox_image(BUSYBOX, &[]);
    BUSYBOX
}

/// A stack name unique to this test process and call (containers never collide).
pub fn unique_stack(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Names of all containers (any state) labelled with `stack`.
pub fn stack_containers(stack: &str) -> Vec<String> {
    let f = format!("label=io.prometheus-stack.stack={stack}");
    podman_ok(&["ps", "-a", "--filter", &f, "--format", "{{.Names}}"])
        .lines()
        .map(String::from)
        .filter(|l| !l.is_empty())
        .collect()
}

/// Removes every container and podman secret of `stack` (cleanup at the end of a test).
pub fn cleanup_stack(stack: &str) {
    let names = stack_containers(stack);
    if !names.is_empty() {
        let mut args = vec!["rm", "-f", "-t", "0"];
        args.extend(names.iter().map(String::as_str));
        let _ = podman(&args);
    }
    let prefix = format!("prometheus-stack.{stack}.");
    for s in podman_ok(&["secret", "ls", "--format", "{{.Name}}"]).lines() {
        if s.starts_with(&prefix) {
            let _ = podman(&["secret", "rm", s]);
        }
    }
}

/// A free port in this helper's range (24000-24999), distinct per call in a process.
pub fn port() -> u16 {
    static N: AtomicU32 = AtomicU32::new(0);
    let base = 24000 + (std::process::id() % 50) as u16 * 20;
    for _ in 0..1000 {
        let p = base + (N.fetch_add(1, Ordering::SeqCst) % 1000) as u16;
        let p = 24000 + (p - 24000) % 1000;
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
    panic!("no free port in 24000-24999");
}

pub use super::rt;

/// The daemon under test on `config` (stack `stack`), output to `log`; on drop it is
/// stopped and the stack's containers and podman secrets removed. Does not wait for it.
pub fn start_daemon(config: &Path, stack: &str, log: &Path) -> TestDaemon {
    TestDaemon::builder(config)
        .log(log)
        .cleanup_podman_stack(stack)
        .spawn()
}
