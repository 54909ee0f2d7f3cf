//! Process handling with real processes: own session/group and user, group stop with a
//! SIGTERM-ignoring grandchild, orphan reaping, nothing left after daemon SIGTERM, leftover
//! cleanup after a daemon SIGKILL, and output that must not hurt the daemon.

use crate::support::stack::*;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(15);

#[test]
fn stop_signals_the_group_waits_for_all_of_it_and_kills_a_term_ignoring_grandchild() {
    let mut s = Stack::new(
        r#"
[services.svc]
command = ["sh", "-c", "(trap '' TERM; exec sleep 1000) & exec sleep 1001"]
stop_timeout = "1s"
"#,
    );
    s.start();
    let u = s.wait_state("svc", "running", T);
    let pid = u["pid"].as_u64().unwrap() as u32;
    // Leader and grandchild share the unit's own session and group.
    let tagged = s.wait_for_count(2);
    for p in &tagged {
        let (_, pgrp, sid) = ids(*p).unwrap();
        assert_eq!((pgrp, sid), (pid as i32, pid as i32), "pid {p}");
    }
    let t0 = Instant::now();
    let out = s.cli(&["stop", "svc"]);
    let took = t0.elapsed();
    assert!(out.status.success(), "{out:?}");
    // The leader died at once; stop waited for the grandchild, then SIGKILLed the group.
    assert!(took >= Duration::from_millis(900), "stop took {took:?}");
    assert!(took < Duration::from_secs(6), "stop took {took:?}");
    assert!(
        s.tagged_processes().is_empty(),
        "{:?}",
        s.tagged_processes()
    );
    let u = s.unit("svc");
    assert_eq!(u["state"], "stopped");
    assert_eq!(u["last_exit"], "killed by SIGTERM");
    assert!(s
        .stderr_text()
        .contains("sending SIGKILL to its process group"));
}

impl Stack {
    fn wait_for_count(&self, n: usize) -> Vec<u32> {
        let end = Instant::now() + T;
        loop {
            let mut p = self.tagged_processes();
            p.retain(|x| *x != self.daemon_pid());
            if p.len() >= n || Instant::now() > end {
                assert!(p.len() >= n, "expected {n} unit processes, found {p:?}");
                return p;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The uid of user `nobody` on this machine.
fn nobody_uid() -> String {
    let out = std::process::Command::new("id")
        .args(["-u", "nobody"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn unit_runs_as_its_user_with_env_env_files_and_workdir() {
    let mut s = Stack::new(
        r#"
[services.who]
kind = "oneshot"
command = ["sh", "-c", "echo uid=$(id -u) gid=$(id -g) home=$HOME user=$USER pwd=$(pwd) a=$A b=$B notify=${NOTIFY_SOCKET:-none}"]
user = "nobody"
workdir = "/tmp"
env = { A = "from-env", B = "env-wins" }
env_files = ["{dir}/unit.env"]
"#,
    );
    std::fs::write(s.path().join("unit.env"), "# comment\nB=from-file\nC=3\n").unwrap();
    let mut cmd = s.daemon_command();
    cmd.env("NOTIFY_SOCKET", s.path().join("nowhere"));
    s.start_with(cmd);
    s.wait_state("who", "completed", T);
    let logs = s.cli(&["logs", "who"]);
    let text = String::from_utf8_lossy(&logs.stdout);
    let uid = nobody_uid();
    assert!(
        text.contains(&format!("uid={uid} ")) && !text.contains("uid=0 "),
        "{text}"
    );
    assert!(
        text.contains("user=nobody pwd=/tmp a=from-env b=env-wins"),
        "{text}"
    );
    // The daemon's own systemd variables are not handed down.
    assert!(text.contains("notify=none"), "{text}");
}

#[test]
fn orphans_are_reparented_to_the_daemon_and_reaped() {
    let mut s = Stack::new(
        r#"
[services.spawner]
command = ["sh", "-c", "sh -c 'sleep 0.7 & exit 0'; exec sleep 1000"]
"#,
    );
    s.start();
    let leader = s.wait_state("spawner", "running", T)["pid"]
        .as_u64()
        .unwrap() as u32;
    let daemon = s.daemon_pid() as i32;
    // The orphaned `sleep 0.7` now has the daemon (a subreaper) as its parent.
    let end = Instant::now() + T;
    let orphan = loop {
        let found = s
            .tagged_processes()
            .into_iter()
            .find(|p| *p != leader && ids(*p).is_some_and(|(ppid, _, _)| ppid == daemon));
        if let Some(p) = found {
            break p;
        }
        assert!(Instant::now() < end, "no orphan re-parented to the daemon");
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(1500));
    // Reaped: no zombie child left under the daemon.
    assert!(
        ids(orphan).is_none(),
        "orphan {orphan} still in /proc (zombie not reaped)"
    );
    assert_eq!(s.unit("spawner")["state"], "running");
}

#[test]
fn daemon_sigterm_stops_dependents_first_and_leaves_nothing_running() {
    let mut s = Stack::new(
        r#"
[services.db]
command = ["sh", "-c", "trap 'echo db >> {dir}/order; exit 0' TERM; while :; do sleep 0.05; done"]

[services.app]
command = ["sh", "-c", "trap 'sleep 0.4; echo app >> {dir}/order; exit 0' TERM; while :; do sleep 0.05; done"]
depends_on = ["db"]

[services.stubborn]
command = ["sh", "-c", "trap '' TERM; sleep 1000 & sleep 1000 & wait"]
stop_timeout = "1s"
"#,
    );
    s.start();
    s.wait_state("app", "running", T);
    s.wait_state("stubborn", "running", T);
    s.wait_for_count(5);
    let st = s.terminate();
    assert!(st.success(), "exit status {st}");
    let order = std::fs::read_to_string(s.path().join("order")).unwrap();
    assert_eq!(
        order, "app\ndb\n",
        "dependents stop before their dependencies"
    );
    assert!(
        s.tagged_processes().is_empty(),
        "left running: {:?}",
        s.tagged_processes()
    );
    assert!(!s.socket.exists(), "socket removed on exit");
}

#[test]
fn after_daemon_sigkill_the_next_run_kills_leftovers_but_never_a_reused_pid() {
    let mut s = Stack::new(
        r#"
[services.svc]
command = ["sh", "-c", "(trap '' TERM; exec sleep 1000) & exec sleep 1001"]
"#,
    );
    s.start();
    s.wait_state("svc", "running", T);
    let old = s.wait_for_count(2);
    s.kill9();
    // Documented: a SIGKILLed daemon cannot stop its units; they survive until the next run.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        old.iter().all(|p| alive(*p)),
        "units survive a daemon SIGKILL"
    );

    // A process group the record names with another start time (a reused pid) is spared.
    let mut decoy = std::process::Command::new("sleep")
        .arg("1000")
        .process_group(0)
        .spawn()
        .unwrap();
    let record = s.path().join("data/run/process-groups");
    let mut text = std::fs::read_to_string(&record).expect("group record written");
    assert!(text.contains(" svc\n"), "{text}");
    text.push_str(&format!("{} 1 decoy\n", decoy.id()));
    std::fs::write(&record, text).unwrap();

    s.start();
    s.wait_state("svc", "running", T);
    for p in &old {
        assert!(
            !alive(*p),
            "leftover {p} still running after the next run started"
        );
    }
    assert!(alive(decoy.id()), "a reused pid must never be killed");
    assert!(s.stderr_text().contains("leftover"), "{}", s.stderr_text());
    let _ = decoy.kill();
    let _ = decoy.wait();
}

#[test]
fn invalid_utf8_and_megabyte_lines_are_logged_safely() {
    let mut s = Stack::new(
        r#"
[services.out]
kind = "oneshot"
command = ["/usr/bin/python3", "-c", '''import sys; o=sys.stdout.buffer; o.write(b'bad \xff\xfe bytes\n'); o.write(b'x'*(1<<20)+b'\n'); o.write(b'after-long\n'); o.write(b'no newline at end'); o.flush()''']
"#,
    );
    s.start();
    s.wait_state("out", "completed", T);
    let logs = s.cli(&["logs", "-n", "10", "out"]);
    let text = String::from_utf8(logs.stdout).expect("logs are valid UTF-8");
    assert!(text.contains("bad \u{fffd}\u{fffd} bytes"), "{text:.200}");
    let long = text.lines().find(|l| l.starts_with("xxxx")).unwrap();
    assert!(
        long.len() < 20_000 && long.contains("more bytes cut"),
        "{}",
        long.len()
    );
    assert!(
        text.contains("after-long\nno newline at end\n"),
        "{text:.300}"
    );
    assert!(s.stderr_text().contains("out | after-long"));
    let n3 = s.cli(&["logs", "-n", "3", "out"]);
    assert_eq!(
        String::from_utf8_lossy(&n3.stdout),
        "after-long\nno newline at end\n-- completed\n"
    );
}

#[test]
fn a_flooding_child_with_a_stalled_stderr_neither_blocks_nor_bloats_the_daemon() {
    let mut s = Stack::new(
        r#"
[services.flood]
command = ["yes", "0123456789012345678901234567890123456789012345678901234567890123456789"]

[services.quiet]
command = ["sleep", "1000"]
"#,
    );
    let mut cmd = s.daemon_command();
    // Nobody reads the daemon's stderr: it fills up like a stalled journald.
    cmd.stderr(Stdio::piped());
    s.start_with(cmd);
    s.wait_state("flood", "running", T);
    let pid = s.daemon_pid();
    std::thread::sleep(Duration::from_millis(500));
    let rss1 = rss_kib(pid);
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        let t0 = Instant::now();
        let st = s.status();
        worst = worst.max(t0.elapsed());
        assert_eq!(find(&st, "flood")["state"], "running");
        std::thread::sleep(Duration::from_millis(150));
    }
    let rss2 = rss_kib(pid);
    assert!(
        worst < Duration::from_secs(1),
        "status took {worst:?} during the flood"
    );
    assert!(rss2 < 80 * 1024, "daemon RSS {rss2} KiB during the flood");
    assert!(
        rss2 < rss1 + 32 * 1024,
        "daemon RSS grew from {rss1} to {rss2} KiB"
    );
    let logs = s.cli(&["logs", "-n", "3", "flood"]);
    assert_eq!(String::from_utf8_lossy(&logs.stdout).lines().count(), 3);
    let t0 = Instant::now();
    assert!(s.cli(&["stop", "flood"]).status.success());
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(s.terminate().success());
}

/// Security issue point 9: an `exec` health probe runs as the unit does (its user and
/// workdir), not as root.
#[test]
fn exec_probes_run_as_the_units_user_in_its_workdir() {
    use std::os::unix::fs::PermissionsExt;
    let mut s = Stack::new(
        r#"
[services.svc]
command = ["sleep", "1000"]
user = "nobody"
workdir = "/tmp"
health = { exec = ["sh", "-c", "echo uid=$(id -u) pwd=$(pwd) > {dir}/probe/who"], interval = "200ms" }
"#,
    );
    // nobody must reach the folder the probe writes to.
    std::fs::set_permissions(s.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let probe = s.path().join("probe");
    std::fs::create_dir(&probe).unwrap();
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o777)).unwrap();
    s.start();
    s.wait_state("svc", "healthy", T);
    let who = std::fs::read_to_string(probe.join("who")).unwrap();
    let uid = nobody_uid();
    assert_eq!(who.trim(), format!("uid={uid} pwd=/tmp"));
}
