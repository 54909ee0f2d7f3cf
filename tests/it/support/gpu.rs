//! Helpers for the GPU tests: build the fake libnvidia-ml.so.1 and script what it reports.
#![allow(dead_code)]

use crate::support::daemon::TestDaemon;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A fake NVML library in its own temp dir, answering from `script`.
pub struct FakeNvml {
    pub dir: tempfile::TempDir,
    /// `DIR/libnvidia-ml.so.1`.
    pub lib: PathBuf,
    /// The script file (also compiled in as the default, so no env var is needed in-process).
    pub script: PathBuf,
    /// Call log (`log` line), one "FUNCTION THREAD" per call.
    pub log: PathBuf,
}

pub const GIB: u64 = 1 << 30;
pub const MIB: u64 = 1 << 20;

impl FakeNvml {
    /// Compiles tests/gpu/fake_nvml.c with gcc; fails the test with a hint when gcc is absent.
    pub fn build() -> FakeNvml {
        let dir = tempfile::tempdir().expect("tempdir");
        let lib = dir.path().join("libnvidia-ml.so.1");
        let script = dir.path().join("nvml-script");
        let log = dir.path().join("nvml-calls.log");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gpu/fake_nvml.c");
        let out = Command::new("gcc")
            .args(["-shared", "-fPIC", "-O1", "-o"])
            .arg(&lib)
            .arg(format!(
                "-DFAKE_NVML_DEFAULT_SCRIPT=\"{}\"",
                script.display()
            ))
            .arg(&src)
            .arg("-lpthread")
            .output()
            .expect("gcc not found: install it (tests/setup.sh installs build-essential)");
        assert!(
            out.status.success(),
            "building the fake NVML failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let f = FakeNvml {
            dir,
            lib,
            script,
            log,
        };
        f.write("");
        f
    }

    /// Replaces the script (atomically, so the library never reads half a file).
    pub fn write(&self, body: &str) {
        let tmp = self.script.with_extension("tmp");
        std::fs::write(&tmp, format!("log {}\n{body}", self.log.display())).unwrap();
        std::fs::rename(&tmp, &self.script).unwrap();
    }

    /// The calls logged so far.
    pub fn calls(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (f, t) = l.split_once(' ')?;
                Some((f.to_string(), t.to_string()))
            })
            .collect()
    }
}

/// A `gpu` script line.
pub fn gpu_line(uuid: &str, total: u64, used: u64, name: &str) -> String {
    format!(
        "gpu {uuid} {total} {used} {} {} 37 12 51 123456 {name}\n",
        total - used,
        256 * MIB
    )
}

/// A `proc` script line.
pub fn proc_line(gpu: usize, pid: u32, bytes: u64) -> String {
    format!("proc {gpu} {pid} {bytes}\n")
}

/// Waits up to `secs` for `f` to return Some.
pub fn wait_for<T>(secs: u64, f: impl FnMut() -> Option<T>) -> Option<T> {
    crate::support::poll_until(std::time::Duration::from_secs(secs), f)
}

/// A busybox image for container attribution tests (`podman import` of static busybox);
/// built once, serialized across test processes by a lock file.
pub fn busybox_image() -> &'static str {
    const NAME: &str = "localhost/pstest-gpu-busybox:1";
    let podman_ok = Command::new("podman").arg("--version").output();
    assert!(
        matches!(podman_ok, Ok(ref o) if o.status.success()),
        "podman is missing: run tests/setup.sh (CI installs it)"
    );
    assert!(
        Path::new("/bin/busybox").exists(),
        "/bin/busybox is missing: run tests/setup.sh (busybox-static)"
    );
    let lock = std::fs::File::create("/tmp/pstest-gpu-image.lock").unwrap();
    let _guard = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("flock");
    let exists = Command::new("podman")
        .args(["image", "exists", NAME])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if exists {
        return NAME;
    }
    let root = tempfile::tempdir().unwrap();
    let bin = root.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    for applet in ["sh", "sleep"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(root.path())
        .args(["-c", "."])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = Command::new("podman")
        .args(["import", "--quiet", "-", NAME])
        .stdin(tar.stdout.take().unwrap())
        .output()
        .unwrap();
    let _ = tar.wait();
    assert!(
        out.status.success(),
        "podman import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    NAME
}

/// Children of `pid` (from /proc/PID/task/PID/children).
pub fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// The daemon under test on a config in a temp dir (which it owns): `body` after a
/// [stack]/[control] header; `fake` = Some puts the fake NVML on LD_LIBRARY_PATH, None
/// leaves it out entirely. Waits until the control socket answers.
pub fn start_daemon(body: &str, fake: Option<&FakeNvml>) -> TestDaemon {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let socket = d.join("control.sock");
    let config = d.join("stack.toml");
    std::fs::write(
        &config,
        format!(
            "[stack]\nname = \"gputest\"\ndata_dir = \"{}\"\nruntime_dir = \"{}\"\n\n\
             [control]\nsocket = \"{}\"\n\n{body}",
            d.join("data").display(),
            d.join("run").display(),
            socket.display()
        ),
    )
    .unwrap();
    let mut b = TestDaemon::builder(&config)
        .socket(&socket)
        .stdout(&d.join("daemon.out"))
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("FAKE_NVML_SCRIPT")
        .env("PROMETHEUS_STACK_LOG", "info")
        .stop_grace(std::time::Duration::from_secs(15));
    if let Some(f) = fake {
        b = b
            .env("LD_LIBRARY_PATH", f.dir.path())
            .env("FAKE_NVML_SCRIPT", &f.script);
    }
    b.own_dir(dir).start()
}

/// `status --json` (the CLI adds the `gpu` snapshot); Null while the daemon does not answer.
pub fn status_json(d: &TestDaemon) -> serde_json::Value {
    d.status_cli().unwrap_or_default()
}

/// `gpu --json` as JSON.
pub fn gpu_json(d: &TestDaemon) -> serde_json::Value {
    serde_json::from_str(&d.cli_ok(&["gpu", "--json"])).unwrap()
}
