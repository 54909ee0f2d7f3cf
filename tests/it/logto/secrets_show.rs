//! `secrets show logto-admin-password`: root reads the value from the store; another
//! user gets an error and no value; a name outside the plan is refused with the known ones.

use crate::support::stack_command;
use prometheus_stack::secrets::SecretStore;
use std::os::unix::process::CommandExt;

#[test]
fn secrets_show_prints_the_admin_password_to_root_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("stack.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[stack]
domain = "example.test"
data_dir = "{}"

[proxy]
https = "127.0.0.1:27443"
tls = "internal"

[services.logto]
preset = "logto"
release_dir = "/nonexistent/logto"
env = {{ DB_URL = "postgres://logto:x@127.0.0.1:5432/logto" }}
"#,
            data.display()
        ),
    )
    .unwrap();
    let store = SecretStore::with_credentials(&data, None);
    store
        .write("logto-admin-password", "pw-Only-Root-Sees", None)
        .unwrap();
    // Others may walk to the store (as a packaged data dir allows), not read its files.
    for d in [dir.path(), data.as_path(), store.dir()] {
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }

    let out = stack_command(&config)
        .args(["secrets", "show", "logto-admin-password"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "pw-Only-Root-Sees\n");

    let out = stack_command(&config)
        .args(["secrets", "show", "nope"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("logto-admin-password"), "{err}");

    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let out = stack_command(&config)
        .args(["secrets", "show", "logto-admin-password"])
        .uid(nobody.uid.as_raw())
        .gid(nobody.gid.as_raw())
        .output()
        .unwrap();
    let (stdout, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{stdout}");
    assert!(!stdout.contains("pw-Only-Root-Sees") && !err.contains("pw-Only-Root-Sees"));
    assert!(err.contains("run as root"), "{err}");
}
