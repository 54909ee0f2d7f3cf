//! `check`: every class of config error reported with its key and line, all at once.

use crate::support::stack::*;

fn check(s: &Stack) -> (i32, String) {
    let out = s.cli(&["check"]);
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn valid_config_passes() {
    let s = Stack::new(
        r#"
[services.db]
command = ["sleep", "1000"]
health = { tcp = "127.0.0.1:20031" }
port = 20031

[services.web]
command = ["/usr/bin/python3", "-m", "http.server", "20032"]
port = 20032
depends_on = { db = "healthy" }
user = "nobody"
stop_timeout = "3s"
"#,
    );
    let (code, out) = check(&s);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok (2 units: db, web)"), "{out}");
}

#[test]
fn every_error_class_is_listed_with_key_and_line() {
    let s = Stack::new("");
    let nonexec = s.path().join("not-executable.sh");
    std::fs::write(&nonexec, "#!/bin/sh\n").unwrap();
    s.write_config(&format!(
        r#"
[services.a]
command = ["sleep", "1"]
depends_on = ["b"]
port = 20041
colour = "blue"

[services.b]
command = ["sleep", "1"]
depends_on = ["a"]
port = 20041
stop_timeout = "10 parsecs"

[services.c]
command = ["/nonexistent/prog"]
depends_on = ["nothere"]
user = "no-such-user-xyz"

[services.d]
command = ["{}"]

[proxy]
https = "127.0.0.1:20443"
max_body = "12 zettabytes"
trusted_proxies = ["10.0.0.5", "10.0.0.0/40"]
hsts = "forever"
"#,
        nonexec.display()
    ));
    let (code, out) = check(&s);
    assert_eq!(code, 1, "{out}");
    // Header is 7 lines (stack + control); services.a starts at line 9.
    let cfg = s.config.display().to_string();
    let expect = [
        (13, "services.a.colour", "unknown field `colour`"),
        (11, "services.a.depends_on", "dependency cycle: a -> b -> a"),
        (
            18,
            "services.b.port",
            "port 20041 is already used by unit a",
        ),
        (
            19,
            "services.b.stop_timeout",
            "invalid duration \"10 parsecs\"",
        ),
        (22, "services.c.command", "/nonexistent/prog does not exist"),
        (23, "services.c.depends_on", "unknown unit \"nothere\""),
        (24, "services.c.user", "unknown user \"no-such-user-xyz\""),
        (27, "services.d.command", "is not executable"),
        (31, "proxy.max_body", "invalid size \"12 zettabytes\""),
        (
            32,
            "proxy.trusted_proxies.1",
            "\"10.0.0.0/40\": prefix length must be 0..=32",
        ),
        (33, "proxy.hsts", "\"forever\": use \"max-age=SECONDS\""),
    ];
    for (line, key, msg) in expect {
        let want = format!("{cfg}:{line}: {key}: ");
        let hit = out.lines().find(|l| l.contains(&want));
        assert!(
            hit.is_some_and(|l| l.contains(msg)),
            "missing `{want}…{msg}` in:\n{out}"
        );
    }
    assert!(out.contains("11 problems"), "{out}");
}

#[test]
fn run_refuses_an_invalid_config_and_starts_nothing() {
    let s = Stack::new("[services.a]\ncommand = [\"sleep\", \"1\"]\nrestart = \"sometimes\"\n");
    let out = std::process::Command::new(bin())
        .args(["run", "--config"])
        .arg(&s.config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("services.a.restart"), "{err}");
    assert!(!s.socket.exists());
}
