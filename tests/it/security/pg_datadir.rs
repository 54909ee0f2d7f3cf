//! Point 4: root never follows a link the `postgres` user planted in the data tree it
//! owns, and the initdb password file lives in a folder only root can change.

use crate::support::pg::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

fn postgres_user() -> nix::unistd::User {
    nix::unistd::User::from_name("postgres")
        .unwrap()
        .expect("user postgres exists (run tests/setup.sh)")
}

/// A root-only file standing for /etc/shadow: content, owner and mode to compare after.
fn shadow_like(dir: &Path) -> (PathBuf, (Vec<u8>, u32, u32, u32)) {
    let p = dir.join("shadow");
    std::fs::write(&p, "root:$y$SECRET-HASH-DO-NOT-ECHO:19000::::::\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
    (p.clone(), snapshot(&p))
}

fn snapshot(p: &Path) -> (Vec<u8>, u32, u32, u32) {
    let md = std::fs::metadata(p).unwrap();
    (std::fs::read(p).unwrap(), md.uid(), md.gid(), md.mode())
}

/// A data dir that looks initialized and belongs to postgres, as the attacker has it.
fn owned_data_dir(data: &Path) {
    std::fs::create_dir_all(data).unwrap();
    let u = postgres_user();
    std::os::unix::fs::chown(data, Some(u.uid.as_raw()), Some(u.gid.as_raw())).unwrap();
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn pg_version_symlink_is_refused_and_not_echoed() {
    crate::support::rt().block_on(async {
        let dir = reachable_tempdir();
        let (target, before) = shadow_like(dir.path());
        let plan = pg_plan(dir.path(), &pg15_bin(), free_port(), "");
        let data = plan.stack.data_dir.join("postgres");
        owned_data_dir(&data);
        std::os::unix::fs::symlink(&target, data.join("PG_VERSION")).unwrap();

        let c = Ctx::new(&plan, "postgres", store(&plan));
        let e = prepare(&plan, &c).await.unwrap_err();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(!e.contains("SECRET"), "content echoed: {e}");
        assert_eq!(snapshot(&target), before, "target untouched");

        // A plain PG_VERSION with junk is refused without echoing it either.
        std::fs::remove_file(data.join("PG_VERSION")).unwrap();
        std::fs::write(data.join("PG_VERSION"), "SECRET-HASH\n").unwrap();
        let e = prepare(&plan, &c).await.unwrap_err();
        assert!(!e.contains("SECRET"), "content echoed: {e}");
    });
}

#[test]
fn postmaster_pid_symlink_is_refused() {
    crate::support::rt().block_on(async {
        let dir = reachable_tempdir();
        let outside = dir.path().join("outside.pid");
        std::fs::write(&outside, "999999999\n").unwrap();
        let before = snapshot(&outside);
        let plan = pg_plan(dir.path(), &pg15_bin(), free_port(), "");
        let data = plan.stack.data_dir.join("postgres");
        owned_data_dir(&data);
        std::fs::write(data.join("PG_VERSION"), "15\n").unwrap();
        std::os::unix::fs::symlink(&outside, data.join("postmaster.pid")).unwrap();

        let c = Ctx::new(&plan, "postgres", store(&plan));
        let e = prepare(&plan, &c).await.unwrap_err();
        assert!(
            e.contains("postmaster.pid") && e.contains("symbolic link"),
            "{e}"
        );
        assert_eq!(snapshot(&outside), before, "target untouched");
        assert!(
            std::fs::symlink_metadata(data.join("postmaster.pid")).is_ok(),
            "left for the operator to look at"
        );
    });
}

/// A stand-in initdb (run as postgres) reports where the password file is and who owns
/// that folder; a link planted at the old path in the socket folder stays untouched.
#[test]
fn initdb_password_file_is_in_a_root_only_folder() {
    crate::support::rt().block_on(async {
        let dir = reachable_tempdir();
        let (target, before) = shadow_like(dir.path());
        let bin = dir.path().join("pg/15/bin");
        std::fs::create_dir_all(&bin).unwrap();
        let report = dir.path().join("report");
        std::fs::create_dir(&report).unwrap();
        std::fs::set_permissions(&report, std::fs::Permissions::from_mode(0o777)).unwrap();
        let script = format!(
            "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in --pwfile=*) pw=\"${{a#--pwfile=}}\";; esac; done\n\
             d=$(dirname \"$pw\")\n\
             {{ stat -c '%u %a' \"$d\"; wc -c < \"$pw\"; \
             ln -s {t} \"$d/evil\" 2>/dev/null && echo planted; }} > {r}/out\nexit 1\n",
            t = target.display(),
            r = report.display()
        );
        for name in ["postgres", "initdb"] {
            std::fs::write(bin.join(name), &script).unwrap();
            std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        let plan = pg_plan(dir.path(), &bin, free_port(), "");
        let sock = plan.stack.runtime_dir.join("postgres");
        std::fs::create_dir_all(&sock).unwrap();
        let u = postgres_user();
        std::os::unix::fs::chown(&sock, Some(u.uid.as_raw()), Some(u.gid.as_raw())).unwrap();
        std::os::unix::fs::symlink(&target, sock.join(".initdb-pwfile")).unwrap();

        let c = Ctx::new(&plan, "postgres", store(&plan));
        let e = prepare(&plan, &c).await.unwrap_err();
        assert!(e.contains("initdb"), "{e}");
        let out = std::fs::read_to_string(report.join("out")).expect("stand-in initdb ran");
        let mut lines = out.lines();
        let owner_mode = lines.next().unwrap();
        let (uid, mode) = owner_mode.split_once(' ').unwrap();
        assert_eq!(uid, "0", "password folder owned by root: {out}");
        let mode = u32::from_str_radix(mode, 8).unwrap();
        assert_eq!(mode & 0o022, 0, "nobody else may write there: {out}");
        let size: usize = lines.next().unwrap().trim().parse().unwrap();
        assert!(size >= 40, "initdb reads the password: {out}");
        assert!(!out.contains("planted"), "postgres planted a link: {out}");
        assert_eq!(snapshot(&target), before, "target untouched");
        let leftovers: Vec<_> = std::fs::read_dir(&plan.stack.runtime_dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("initdb"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    });
}
