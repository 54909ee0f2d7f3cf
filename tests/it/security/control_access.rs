//! Who may use the control socket (security issue point 8): root and the admin group
//! get every command; anyone else is refused, also when the socket's mode would let
//! them connect (each peer is checked with SO_PEERCRED). A secret whose rotation would
//! destroy data is refused with the reason.

use crate::support::stack::{bin, Stack};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::time::Duration;

const T: Duration = Duration::from_secs(15);
const NOBODY: &str = "65534";

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The CLI as nobody (uid/gid 65534) with the given supplementary groups.
fn cli_as_nobody(s: &Stack, groups: &str, args: &[&str]) -> Output {
    let mut c = Command::new("setpriv");
    c.args([&format!("--reuid={NOBODY}"), &format!("--regid={NOBODY}")]);
    if groups.is_empty() {
        c.arg("--clear-groups");
    } else {
        c.arg(format!("--groups={groups}"));
    }
    c.arg(bin())
        .arg("--socket")
        .arg(&s.socket)
        .args(args)
        .output()
        .expect("run the CLI as nobody")
}

#[test]
fn only_root_and_the_admin_group_may_use_the_socket() {
    // `group = "adm"` lands in [control]: adm stands in for prometheus-stack-admin.
    let mut s = Stack::new(
        "group = \"adm\"\n\n[services.idle]\ncommand = [\"sleep\", \"1000\"]\n\
         env = { VAULT = \"${secret:lobechat-key-vaults-secret}\" }\n",
    );
    s.start();
    s.wait_state("idle", "running", T);
    let meta = std::fs::metadata(&s.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(
        std::os::unix::fs::MetadataExt::gid(&meta),
        4,
        "socket not given to adm"
    );

    // Root: accepted.
    let out = s.cli(&["status"]);
    assert!(out.status.success(), "{}", text(&out));

    // nobody outside the group: the socket's mode refuses it, with a clear message.
    let out = cli_as_nobody(&s, "", &["status"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("permission denied"), "{}", text(&out));

    // A member of the admin group (supplementary): accepted.
    let out = cli_as_nobody(&s, "adm", &["status"]);
    assert!(out.status.success(), "{}", text(&out));

    // Even when the socket's mode lets everyone connect, nobody gets 403 on every command.
    std::fs::set_permissions(&s.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    for args in [
        &["status"][..],
        &["stop", "idle"],
        &["secrets", "rotate", "lobechat-key-vaults-secret"],
    ] {
        let out = cli_as_nobody(&s, "", args);
        let t = text(&out);
        assert!(!out.status.success(), "{args:?} accepted for nobody: {t}");
        assert!(
            t.contains("permission denied") && t.contains("\"adm\"") && t.contains("uid 65534"),
            "{args:?}: {t}"
        );
    }
    assert_eq!(s.unit("idle")["state"], "running");

    // Root may do everything, but not rotate a secret whose old value still decrypts data.
    let before = std::fs::read(s.path().join("data/secrets/lobechat-key-vaults-secret")).ok();
    let out = s.cli(&["secrets", "rotate", "lobechat-key-vaults-secret"]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("cannot be rotated") && t.contains("unreadable"),
        "{t}"
    );
    let after = std::fs::read(s.path().join("data/secrets/lobechat-key-vaults-secret")).ok();
    assert_eq!(before, after, "the secret was changed");
    let (code, body) = s
        .try_request("GET", "/v1/secrets")
        .expect("GET /v1/secrets");
    assert_eq!(code, 200, "{body}");
    let rows: serde_json::Value = serde_json::from_str(&body).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "lobechat-key-vaults-secret")
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(row["rotatable"], false, "{row}");
    s.terminate();
}
