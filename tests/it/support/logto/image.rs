//! Test images shaped like Logto's and LobeHub's, built offline: a busybox + node rootfs
//! (node and the libraries `ldd` lists, copied from this machine) with the stand-ins
//! where the real images keep their programs, imported with `podman import` and the
//! images' own WORKDIR / ENTRYPOINT / CMD.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use super::standins::{put, standin};

fn require(p: &str) {
    assert!(
        Path::new(p).exists(),
        "{p} is missing: run tests/setup.sh (podman, busybox-static)"
    );
}

/// busybox as /bin/sh, node as /usr/local/bin/node and /bin/node, with its libraries.
fn base_rootfs(root: &Path) {
    require("/bin/busybox");
    require("/usr/bin/podman");
    put(Path::new("/bin/busybox"), &root.join("bin/busybox"));
    for l in ["sh", "cat", "ls", "sleep"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(l)).unwrap();
    }
    let node = super::standins::node();
    let node = std::fs::canonicalize(node).unwrap();
    put(&node, &root.join("usr/local/bin/node"));
    std::os::unix::fs::symlink("/usr/local/bin/node", root.join("bin/node")).unwrap();
    let ldd = Command::new("ldd").arg(&node).output().unwrap();
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux… (0x…)"
        let path = line
            .split("=>")
            .last()
            .and_then(|r| r.split_whitespace().next())
            .filter(|p| p.starts_with('/'));
        if let Some(p) = path {
            put(Path::new(p), &root.join(p.trim_start_matches('/')));
        }
    }
    std::fs::create_dir_all(root.join("tmp")).unwrap();
}

fn import(root: &Path, name: &str, changes: &[&str]) {
    // The previous build of this test image goes first, so runs leave no dangling images.
    let _ = Command::new("podman")
        .args(["rmi", "-f", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(root)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut cmd = Command::new("podman");
    cmd.arg("import");
    for c in changes {
        cmd.args(["--change", c]);
    }
    let out = cmd
        .args(["-", name])
        .stdin(tar.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(tar.wait().unwrap().success());
    assert!(
        out.status.success(),
        "podman import {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `localhost/pstest-logto:1`: /etc/logto laid out like the release, ENTRYPOINT
/// `npm run` (a stand-in), CMD `start`. The seed stand-in finds `preseeded` (no psql in
/// the image): the test loads the tables itself.
pub fn logto_image(dir: &Path) -> String {
    let root = dir.join("logto-rootfs");
    base_rootfs(&root);
    super::standins::logto_release(&root.join("etc"));
    std::fs::write(root.join("etc/logto/packages/cli/preseeded"), "").unwrap();
    let npm = root.join("etc/logto/npm-run.sh");
    put(&standin("logto_npm_run_standin.sh"), &npm);
    std::fs::set_permissions(&npm, std::fs::Permissions::from_mode(0o755)).unwrap();
    let name = "localhost/pstest-logto:1";
    import(
        &root,
        name,
        &[
            "WORKDIR /etc/logto",
            "ENV PATH=/usr/local/bin:/bin",
            "ENTRYPOINT [\"/etc/logto/npm-run.sh\"]",
            "CMD [\"start\"]",
        ],
    );
    name.into()
}

/// `localhost/pstest-lobehub:1`: /app with server.js, docker.cjs, migrations/ and
/// startServer.js (stand-ins), ENTRYPOINT /bin/node, CMD /app/startServer.js.
pub fn lobehub_image(dir: &Path, expect: &serde_json::Value) -> String {
    let root = dir.join("lobehub-rootfs");
    base_rootfs(&root);
    let app = super::standins::lobechat_release(&root, expect);
    std::fs::rename(&app, root.join("app")).unwrap();
    put(
        &standin("lobechat_start_server_standin.js"),
        &root.join("app/startServer.js"),
    );
    let name = "localhost/pstest-lobehub:1";
    import(
        &root,
        name,
        &[
            "WORKDIR /app",
            "ENV PATH=/usr/local/bin:/bin",
            "ENTRYPOINT [\"/bin/node\"]",
            "CMD [\"/app/startServer.js\"]",
        ],
    );
    name.into()
}
