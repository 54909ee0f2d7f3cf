//! Resource usage of a container unit: the memory of the container's processes (under
//! its conmon, not only the `podman run` client) shows in `status --json` and metrics.

use crate::support::podman::*;
use std::time::Duration;

const MIB: u64 = 1 << 20;

#[test]
fn container_memory_is_counted_in_the_units_usage() {
    let image = busybox();
    let dir = tempfile::tempdir().unwrap();
    let stack = unique_stack("use");
    let config = dir.path().join("stack.toml");
    let sock = dir.path().join("control.sock");
    // dd holds its 160 MiB buffer (every page written) while the pipe reader never
    // reads: more than the podman client alone could account for.
    std::fs::write(
        &config,
        format!(
            r#"
[stack]
name = "{stack}"
data_dir = "{data}"

[control]
socket = "{sock}"

[services.hog]
runtime = "podman"
image = "{image}"
command = ["/bin/sh", "-c", "dd if=/dev/zero bs=160M count=1 | sleep 600"]
stop_timeout = "2s"
"#,
            data = dir.path().join("data").display(),
            sock = sock.display(),
        ),
    )
    .unwrap();
    let mut d = start_daemon(&config, &stack, &dir.path().join("daemon.log"));
    let hog = d.wait_unit("hog", "using 160 MiB", Duration::from_secs(40), |u| {
        u["memory_bytes"].as_u64().is_some_and(|m| m >= 160 * MIB)
    });
    assert!(hog["container"].is_string(), "{hog}");
    let text = get_metrics(&sock);
    let line = text
        .lines()
        .find(|l| l.starts_with("prometheus_stack_unit_memory_bytes{unit=\"hog\"}"))
        .unwrap_or_else(|| panic!("{text}"));
    let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(v >= (160 * MIB) as f64, "{line}");
    d.stop();
    cleanup_stack(&stack);
}

/// `GET /v1/metrics` over the control socket.
fn get_metrics(sock: &std::path::Path) -> String {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    s.write_all(b"GET /v1/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}
