//! The control socket and CLI round trip, reload diffs (by CLI and SIGHUP), systemd notify,
//! and the embedded default config.

use crate::support::stack::*;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(15);

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn cli_round_trip_status_start_stop_restart_logs() {
    let mut s = Stack::new(
        r#"
[services.echo]
command = ["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done; exec sleep 1000"]

[services.idle]
command = ["sleep", "1000"]
"#,
    );
    s.start();
    s.wait_state("echo", "running", T);
    assert_eq!(
        std::fs::metadata(&s.socket).unwrap().permissions().mode() & 0o777,
        0o660
    );
    // status --json: the documented shape.
    let out = s.cli(&["status", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let units = v["units"].as_array().unwrap();
    assert_eq!(units.len(), 2);
    for u in units {
        for k in [
            "name",
            "state",
            "pid",
            "restarts",
            "health",
            "last_exit",
            "reason",
        ] {
            assert!(u.get(k).is_some(), "missing {k} in {u}");
        }
    }
    // The table.
    let out = s.cli(&["status"]);
    let table = text(&out);
    assert!(table.starts_with("UNIT"), "{table}");
    assert!(table.contains("RESTARTS") && table.contains("LAST EXIT"));
    assert!(table
        .lines()
        .any(|l| l.starts_with("echo") && l.contains("running")));

    // stop / start / restart.
    let pid1 = s.unit("idle")["pid"].as_u64().unwrap() as u32;
    let out = s.cli(&["stop", "idle"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(s.unit("idle")["state"], "stopped");
    assert!(!alive(pid1));
    assert!(s.cli(&["start", "idle"]).status.success());
    let u = s.wait_state("idle", "running", T);
    let pid2 = u["pid"].as_u64().unwrap() as u32;
    assert!(s.cli(&["restart", "idle"]).status.success());
    let u = s.wait_until("idle restarted", T, |st| {
        find(st, "idle")["state"] == "running" && find(st, "idle")["pid"] != pid2
    });
    assert_eq!(find(&u, "idle")["restarts"], 1);
    assert!(!alive(pid2));

    // logs -n.
    let out = s.cli(&["logs", "-n", "2", "echo"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "line 4\nline 5\n");
    // Unknown unit: a clear error and exit 1.
    let out = s.cli(&["stop", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("no unit named \"nope\""),
        "{}",
        text(&out)
    );

    // logs -f streams new lines.
    let mut f = Command::new(bin())
        .args([
            "--socket",
            s.socket.to_str().unwrap(),
            "logs",
            "-f",
            "-n",
            "1",
            "idle",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(f.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("restart"), "{first}");
    assert!(s.cli(&["restart", "idle"]).status.success());
    let next = lines.next().unwrap().unwrap();
    assert!(next.contains("restarted by hand"), "{next}");
    let _ = f.kill();
    let _ = f.wait();
}

#[test]
fn a_second_daemon_on_the_same_socket_refuses_and_touches_nothing() {
    let mut s = Stack::new("[services.a]\ncommand = [\"sleep\", \"1000\"]\n");
    s.start();
    let pid = s.wait_state("a", "running", T)["pid"].as_u64().unwrap();
    let out = s.daemon_command().stderr(Stdio::piped()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another daemon already answers on"), "{err}");
    std::thread::sleep(Duration::from_millis(200));
    let u = s.unit("a");
    assert_eq!(u["pid"].as_u64(), Some(pid));
    assert!(alive(pid as u32));
    assert!(s.try_request("GET", "/v1/status").is_some());
}

#[test]
fn cli_without_a_daemon_says_so_in_one_line() {
    let s = Stack::new("[services.a]\ncommand = [\"sleep\", \"1\"]\n");
    for args in [&["status"][..], &["stop", "a"], &["logs", "a"], &["reload"]] {
        let out = s.cli(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("no daemon answers on") && err.contains(s.socket.to_str().unwrap()),
            "{err}"
        );
    }
}

const RELOAD_V1: &str = r#"
[services.db]
command = ["sleep", "1000"]
health = { exec = ["true"], interval = "100ms" }

[services.app]
command = ["sleep", "1001"]
depends_on = ["db"]
env = { V = "1" }

[services.other]
command = ["sleep", "1002"]

[services.gone]
command = ["sleep", "1003"]
"#;

fn pids(s: &Stack) -> std::collections::BTreeMap<String, u64> {
    s.status()["units"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| Some((u["name"].as_str()?.to_string(), u["pid"].as_u64()?)))
        .collect()
}

#[test]
fn reload_restarts_only_changed_units_and_dependents() {
    let mut s = Stack::new(RELOAD_V1);
    s.start();
    s.wait_state("app", "running", T);
    s.wait_state("gone", "running", T);
    let before = pids(&s);

    // 1) Only app's env changes: only app restarts.
    s.write_config(&RELOAD_V1.replace("V = \"1\"", "V = \"2\""));
    let out = s.cli(&["reload"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("restarted app; added none; removed none"),
        "{}",
        text(&out)
    );
    let after = s.wait_until("app back", T, |st| {
        find(st, "app")["state"] == "running" && find(st, "app")["pid"] != before["app"]
    });
    let after: std::collections::BTreeMap<String, u64> = ["db", "other", "gone", "app"]
        .iter()
        .map(|n| (n.to_string(), find(&after, n)["pid"].as_u64().unwrap()))
        .collect();
    assert_eq!(after["db"], before["db"]);
    assert_eq!(after["other"], before["other"]);
    assert_eq!(after["gone"], before["gone"]);

    // 2) An invalid file changes nothing and the caller sees the error with its line.
    s.write_config(&format!(
        "{RELOAD_V1}\n[services.bad]\ncommand = [\"sleep\"]\ndepends_on = [\"missing\"]\n"
    ));
    let out = s.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out);
    assert!(
        err.contains("unknown unit \"missing\"") && err.contains("stack.toml:"),
        "{err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(pids(&s), after);

    // 3) db changes: db and its dependent app restart; a unit is added, one removed.
    let v3 = RELOAD_V1
        .replace(
            "command = [\"sleep\", \"1000\"]",
            "command = [\"sleep\", \"1004\"]",
        )
        .replace(
            "[services.gone]\ncommand = [\"sleep\", \"1003\"]\n",
            "[services.new]\ncommand = [\"sleep\", \"1005\"]\n",
        );
    s.write_config(&v3);
    let out = s.cli(&["reload"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("restarted db, app; added new; removed gone"),
        "{}",
        text(&out)
    );
    let st = s.wait_until("app restarted after db", T, |st| {
        find(st, "app")["state"] == "running"
            && find(st, "app")["pid"] != after["app"]
            && find(st, "new")["state"] == "running"
    });
    assert_ne!(find(&st, "db")["pid"], after["db"]);
    assert_eq!(find(&st, "other")["pid"], after["other"]);
    assert!(find(&st, "gone").is_null());
    assert!(!alive(after["gone"] as u32), "removed unit stopped");
    // app started again only once db was healthy again.
    assert!(
        find(&st, "app")["started_at"].as_f64().unwrap()
            >= find(&st, "db")["since"].as_f64().unwrap() - 0.01
    );

    // 4) SIGHUP reloads too.
    s.write_config(&v3.replace("sleep\", \"1002\"", "sleep\", \"1006\""));
    signal(s.daemon_pid(), libc::SIGHUP);
    s.wait_until("other restarted by SIGHUP", T, |st| {
        find(st, "other")["state"] == "running" && find(st, "other")["pid"] != after["other"]
    });
    assert!(s.stderr_text().contains("reload: restarted [other]"));
}

#[test]
fn systemd_notify_ready_status_and_watchdog() {
    let mut s = Stack::new(
        r#"
[services.slow]
command = ["sh", "-c", "sleep 0.5; touch {dir}/up; exec sleep 1000"]
health = { exec = ["test", "-f", "{dir}/up"], interval = "100ms", start_period = "5s" }

[services.broken]
command = ["sh", "-c", "exit 1"]
backoff = { initial = "0s", max = "50ms" }
crash_loop = { failures = 2, window = "60s" }
"#,
    );
    let sock_path = s.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut cmd = s.daemon_command();
    cmd.env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "200000");
    let t0 = Instant::now();
    s.start_with(cmd);
    let mut msgs: Vec<(Duration, String)> = Vec::new();
    let mut buf = [0u8; 4096];
    while t0.elapsed() < Duration::from_secs(3) {
        if let Ok(n) = sock.recv(&mut buf) {
            msgs.push((
                t0.elapsed(),
                String::from_utf8_lossy(&buf[..n]).into_owned(),
            ));
        }
    }
    let ready: Vec<&(Duration, String)> =
        msgs.iter().filter(|(_, m)| m.contains("READY=1")).collect();
    assert_eq!(ready.len(), 1, "{msgs:?}");
    let (at, msg) = ready[0];
    // READY after slow became healthy (>= 0.5s) and with the failure listed.
    assert!(*at >= Duration::from_millis(500), "{msgs:?}");
    assert!(
        msg.contains("STATUS=2 units: ") && msg.contains("failed: broken"),
        "{msg}"
    );
    let dogs = msgs.iter().filter(|(_, m)| m == "WATCHDOG=1").count();
    assert!(
        (15..=40).contains(&dogs),
        "{dogs} watchdog pings in 3 s at 100 ms"
    );
    let status_only = msgs
        .iter()
        .any(|(_, m)| m.starts_with("STATUS=") && !m.contains("READY"));
    assert!(status_only, "{msgs:?}");
    assert!(s.terminate().success());
    let mut stopping = false;
    while let Ok(n) = sock.recv(&mut buf) {
        stopping |= String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1");
    }
    assert!(stopping);
}

#[test]
fn systemd_notify_abstract_socket() {
    let mut s = Stack::new("[services.a]\ncommand = [\"sleep\", \"1000\"]\n");
    let name = format!("pstest-notify-{}", std::process::id());
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let sock = std::os::unix::net::UnixDatagram::bind_addr(&addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut cmd = s.daemon_command();
    cmd.env("NOTIFY_SOCKET", format!("@{name}"));
    s.start_with(cmd);
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    let ready = loop {
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|_| panic!("no READY=1 in {seen:?}"));
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        if m.starts_with("READY=1") {
            break m;
        }
        seen.push(m);
    };
    assert_eq!(ready, "READY=1\nSTATUS=1 units: 1 running");
}

#[test]
fn embedded_default_config_runs_on_a_fresh_machine() {
    // Another test on this machine (packaging) may install the file for a while.
    let sys = std::path::Path::new("/etc/prometheus-stack/stack.toml");
    let end = Instant::now() + Duration::from_secs(60);
    while sys.exists() {
        assert!(
            Instant::now() < end,
            "{} exists; this test needs a machine without it",
            sys.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut d = Command::new(bin())
        .arg("run")
        .current_dir(dir.path())
        .env_remove("PROMETHEUS_STACK_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("RUNTIME_DIRECTORY")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let socket = dir.path().join("prometheus-stack-data/run/control.sock");
    let end = Instant::now() + T;
    let healthy = loop {
        let out = Command::new(bin())
            .args(["status", "--json"])
            .current_dir(dir.path())
            .env_remove("PROMETHEUS_STACK_CONFIG")
            .output()
            .unwrap();
        if out.status.success() {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            if v["units"]
                .as_array()
                .unwrap()
                .iter()
                .all(|u| u["state"] == "healthy")
            {
                break true;
            }
        }
        if Instant::now() > end {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    signal(d.id(), libc::SIGTERM);
    let st = wait_child(&mut d, T).expect("daemon exits on SIGTERM");
    assert!(healthy, "default units never became healthy");
    assert!(st.success());
    assert!(!socket.exists());
}
