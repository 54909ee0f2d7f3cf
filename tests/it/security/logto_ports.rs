//! Security issue 14, point 2b: no Logto port answers on a non-loopback address, for both
//! runtimes. A second network namespace (made here: `ip netns` + a veth pair) reaches the
//! host's address on the veth: the proxy's HTTPS port answers there, Logto's public and
//! admin ports do not, while a control listener on every interface does. Logto is the
//! stand-in that listens like Logto's `app.listen(port)` (no host: every interface):
//! natively, and inside a podman image built from it (the real Logto image is not here).

use crate::support::daemon::TestDaemon;
use crate::support::logto::{daemon, image, logto_db_env, stack_db_passwords, standins, Postgres};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A network namespace joined to the host by a veth pair; deleted on drop.
struct Netns {
    name: String,
    /// The host's (non-loopback) address on the veth.
    host_ip: String,
}

impl Netns {
    fn new(tag: u8) -> Netns {
        let id = std::process::id() % 10_000;
        let name = format!("pstest-lp{tag}-{id}");
        let (host_if, ns_if) = (format!("pslh{tag}{id}"), format!("psln{tag}{id}"));
        let (host_ip, ns_ip) = (format!("10.77.{tag}.1"), format!("10.77.{tag}.2"));
        let ns = Netns { name, host_ip };
        let ip = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().unwrap();
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let _ = Command::new("ip").args(["netns", "del", &ns.name]).output();
        ip(&["netns", "add", &ns.name]);
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ]);
        ip(&["link", "set", &ns_if, "netns", &ns.name]);
        ip(&[
            "addr",
            "add",
            &format!("{}/24", ns.host_ip),
            "dev",
            &host_if,
        ]);
        ip(&["link", "set", &host_if, "up"]);
        let exec = |args: &[&str]| {
            let mut v = vec!["netns", "exec", ns.name.as_str()];
            v.extend(args);
            ip(&v);
        };
        exec(&["ip", "addr", "add", &format!("{ns_ip}/24"), "dev", &ns_if]);
        exec(&["ip", "link", "set", &ns_if, "up"]);
        exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// curl from inside the namespace; the HTTP status, or None when nothing answered.
    fn curl(&self, url: &str, resolve: Option<&str>) -> Option<u16> {
        let mut c = Command::new("ip");
        c.args([
            "netns",
            "exec",
            &self.name,
            "curl",
            "-sk",
            "--connect-timeout",
            "3",
        ]);
        c.args(["-m", "10", "-o", "/dev/null", "-w", "%{http_code}"]);
        if let Some(r) = resolve {
            c.args(["--resolve", r]);
        }
        let out = c.arg(url).output().unwrap();
        let code: u16 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        (code != 0).then_some(code)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair with it.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A node server on every interface without the preset's preload: the control.
fn control_listener(port: u16) -> Child {
    Command::new(standins::node())
        .arg("-e")
        .arg(format!(
            "require('http').createServer((q, s) => s.end('control')).listen({port})"
        ))
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

struct Case {
    tag: u8,
    pg: u16,
    https: u16,
    logto: u16,
    admin: u16,
    control: u16,
}

fn config(dir: &Path, c: &Case, run: &str) -> String {
    format!(
        r#"
[stack]
name = "pstest-lp{tag}"
domain = "example.test"
data_dir = "{data}"
runtime_dir = "{rundir}"
air_gapped = true

[control]
socket = "{sock}"

[proxy]
https = "0.0.0.0:{https}"
tls = "internal"

[services.logto]
preset = "logto"
{run}
port = {logto}
ports = {{ admin = {admin} }}
{db}
"#,
        tag = c.tag,
        data = dir.join("data").display(),
        rundir = dir.join("run").display(),
        sock = dir.join("control.sock").display(),
        https = c.https,
        logto = c.logto,
        admin = c.admin,
        db = logto_db_env(c.pg),
    )
}

/// Starts Logto under the daemon (`run` = the runtime lines), then probes from the namespace.
fn logto_ports_are_loopback_only(c: Case, run: impl FnOnce(&Path) -> String) {
    let pg = Postgres::start(c.pg);
    pg.create_stack_dbs();
    pg.load_logto_schema("logto", "logto");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("stack.toml");
    std::fs::write(&cfg, config(dir.path(), &c, &run(dir.path()))).unwrap();
    stack_db_passwords(&dir.path().join("data"));
    let d: TestDaemon = daemon::start(&cfg, &dir.path().join("daemon.log"));
    let up = d.wait_all_up_sorted(Duration::from_secs(120));
    assert!(up.contains(&"logto healthy".to_string()), "{up:?}");
    let mut control = control_listener(c.control);
    let ns = Netns::new(c.tag);
    let h = &ns.host_ip;
    std::thread::sleep(Duration::from_millis(300));

    // The way in: the proxy on the host's address reaches Logto (its status answers 204).
    let resolve = format!("auth.example.test:{}:{h}", c.https);
    let url = format!("https://auth.example.test:{}/api/status", c.https);
    assert_eq!(
        ns.curl(&url, Some(&resolve)),
        Some(204),
        "the proxy is not reachable from the namespace"
    );
    // The control: anything on every interface is reachable from there.
    assert_eq!(
        ns.curl(&format!("http://{h}:{}/", c.control), None),
        Some(200)
    );
    // Logto's own ports are not, though they answer on the host's loopback.
    for port in [c.logto, c.admin] {
        assert_eq!(
            ns.curl(&format!("http://{h}:{port}/api/status"), None),
            None,
            "port {port} answers on {h}"
        );
        let local = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("http://127.0.0.1:{port}/api/status"))
            .output()
            .unwrap();
        assert_ne!(
            String::from_utf8_lossy(&local.stdout),
            "000",
            "port {port} not on loopback"
        );
    }
    let _ = control.kill();
    let _ = control.wait();
    drop(d);
}

#[test]
fn native_logto_ports_answer_on_loopback_only() {
    logto_ports_are_loopback_only(
        Case {
            tag: 1,
            pg: 27151,
            https: 27461,
            logto: 27651,
            admin: 27652,
            control: 27653,
        },
        |dir| {
            let release = standins::logto_release(dir);
            format!(
                "release_dir = \"{}\"\nnode = \"{}\"",
                release.display(),
                standins::node().display()
            )
        },
    );
}

#[test]
fn podman_logto_ports_answer_on_loopback_only() {
    logto_ports_are_loopback_only(
        Case {
            tag: 2,
            pg: 27152,
            https: 27462,
            logto: 27661,
            admin: 27662,
            control: 27663,
        },
        |dir| {
            format!(
                "runtime = \"podman\"\nimage = \"{}\"",
                image::logto_image(dir)
            )
        },
    );
}
