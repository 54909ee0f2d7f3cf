//! The one HTTP client of the tests: curl (a real client, other process), with or without
//! TLS to the proxy, on TCP or on the daemon's control socket.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

/// Runs curl with `args` and returns (HTTP status, body); status 0 when no answer came.
pub fn curl(args: &[&str]) -> (u16, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sS", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl is installed (tests/setup.sh)");
    let mut body = out.stdout;
    let nl = body.iter().rposition(|b| *b == b'\n').expect("status line");
    let status = String::from_utf8_lossy(&body[nl + 1..])
        .trim()
        .parse()
        .unwrap_or(0);
    if status == 0 {
        // curl itself failed (no HTTP answer): say why in the test output.
        eprintln!(
            "curl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    body.truncate(nl);
    (status, body)
}

/// [`curl`] without blocking the runtime (a server under test may run on it).
pub async fn curl_async(args: Vec<String>) -> (u16, Vec<u8>) {
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        curl(&a)
    })
    .await
    .expect("curl thread")
}

/// The body of a GET that must answer 2xx (`url`, or `path` on `unix_socket`).
fn get_ok(unix_socket: Option<&Path>, url: &str) -> String {
    let mut args = Vec::new();
    if let Some(s) = unix_socket {
        args.extend(["--unix-socket", s.to_str().expect("socket path is UTF-8")]);
    }
    args.push(url);
    let (status, body) = curl(&args);
    assert!(
        (200..300).contains(&status),
        "GET {url}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    String::from_utf8_lossy(&body).into_owned()
}

/// GET `url`; panics unless it answers 2xx.
pub fn http_get(url: &str) -> String {
    get_ok(None, url)
}

/// GET `path` on a unix socket (the daemon's control API); panics unless it answers 2xx.
pub fn http_get_unix(socket: &Path, path: &str) -> String {
    get_ok(Some(socket), &format!("http://localhost{path}"))
}

/// curl arguments that trust `ca` (a PEM file) and resolve `host` to loopback on `port`.
pub fn tls_args(ca: &Path, host: &str, port: u16) -> Vec<String> {
    vec![
        "--cacert".into(),
        ca.display().to_string(),
        "--resolve".into(),
        format!("{host}:{port}:127.0.0.1"),
    ]
}

/// A curl command for `host` through the proxy on `addr`, trusting `ca`; add the rest
/// and run it with [`run`].
pub fn curl_via(ca: &Path, host: &str, addr: SocketAddr) -> Command {
    let mut c = Command::new("curl");
    c.args(["-sS", "--max-time", "10"])
        .args(tls_args(ca, host, addr.port()));
    c
}

/// Runs a command and returns stdout; panics with stderr on failure (a missing tool says
/// to run tests/setup.sh).
pub fn run(mut c: Command) -> String {
    let out = c.output().unwrap_or_else(|e| {
        panic!("cannot run {c:?}: {e} — install test dependencies with tests/setup.sh")
    });
    assert!(
        out.status.success(),
        "{c:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
