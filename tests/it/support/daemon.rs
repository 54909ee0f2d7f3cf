//! The one wrapper around the daemon under test (`prometheus-stack --config FILE run`):
//! start it with a builder, talk to it through the CLI or its control socket, poll unit
//! states, stop it (SIGTERM, then SIGKILL) on drop. Every area's daemon tests use it.

use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Variables a test's own environment may carry (under systemd, in a developer shell) that
/// would change how the daemon or its CLI behaves; never passed on.
const CLEAN_ENV: [&str; 6] = [
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "RUNTIME_DIRECTORY",
    "CREDENTIALS_DIRECTORY",
    "PROMETHEUS_STACK_CONFIG",
];

/// How to start a [`TestDaemon`]; see [`TestDaemon::builder`].
pub struct DaemonBuilder {
    cmd: Command,
    config: PathBuf,
    socket: Option<PathBuf>,
    log: PathBuf,
    stdout: Option<PathBuf>,
    append: bool,
    stop_grace: Duration,
    podman_stack: Option<String>,
    dir: Option<tempfile::TempDir>,
}

impl DaemonBuilder {
    /// Where stderr (and stdout, unless [`DaemonBuilder::stdout`]) go; default
    /// `daemon.log` beside the config.
    pub fn log(mut self, path: &Path) -> Self {
        self.log = path.to_path_buf();
        self
    }

    /// Appends to the log instead of truncating it (a second start keeps the first's lines).
    pub fn append_log(mut self) -> Self {
        self.append = true;
        self
    }

    /// Sends stdout to its own file instead of the log.
    pub fn stdout(mut self, path: &Path) -> Self {
        self.stdout = Some(path.to_path_buf());
        self
    }

    /// The control socket named in the config: status is then read over it (fast, no CLI
    /// process per poll) and [`DaemonBuilder::start`] can wait for it.
    pub fn socket(mut self, path: &Path) -> Self {
        self.socket = Some(path.to_path_buf());
        self
    }

    /// Sets a variable in the daemon's environment.
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    /// Removes a variable from the daemon's environment.
    pub fn env_remove(mut self, key: &str) -> Self {
        self.cmd.env_remove(key);
        self
    }

    /// Runs the daemon in its own process group (signals to the test's group miss it).
    pub fn process_group(mut self) -> Self {
        self.cmd.process_group(0);
        self
    }

    /// How long [`TestDaemon::stop`] waits after SIGTERM before SIGKILL (default 30 s).
    pub fn stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    /// Removes the podman containers and secrets of stack `name` when the daemon is dropped.
    pub fn cleanup_podman_stack(mut self, name: &str) -> Self {
        self.podman_stack = Some(name.to_string());
        self
    }

    /// Keeps `dir` (the config's temp dir) until the daemon has stopped.
    pub fn own_dir(mut self, dir: tempfile::TempDir) -> Self {
        self.dir = Some(dir);
        self
    }

    /// The command with its outputs wired to the log, for a test that runs it itself
    /// (`.output()`) or changes it before [`TestDaemon::spawn_command`].
    pub fn wired_command(mut self) -> Command {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(self.append)
            .truncate(!self.append)
            .open(&self.log)
            .expect("daemon log file");
        let stdout = match &self.stdout {
            Some(p) => std::fs::File::create(p).expect("daemon stdout file"),
            None => log.try_clone().unwrap(),
        };
        self.cmd.stdout(stdout).stderr(log);
        self.cmd
    }

    /// Spawns the daemon; does not wait for it.
    pub fn spawn(mut self) -> TestDaemon {
        let (config, socket, log) = (self.config.clone(), self.socket.clone(), self.log.clone());
        let (stop_grace, podman_stack) = (self.stop_grace, self.podman_stack.clone());
        let dir = self.dir.take();
        let child = self.wired_command().spawn().expect("spawn the daemon");
        TestDaemon {
            child,
            config,
            socket,
            log,
            stop_grace,
            podman_stack,
            _dir: dir,
        }
    }

    /// Spawns the daemon and waits (15 s) until its control socket answers `/v1/status`
    /// (needs [`DaemonBuilder::socket`]); panics with the log when it exits or never answers.
    pub fn start(self) -> TestDaemon {
        assert!(self.socket.is_some(), "start() waits on the control socket");
        let d = self.spawn();
        d.wait_ready(Duration::from_secs(15));
        d
    }
}

/// A running daemon under test; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct TestDaemon {
    pub child: Child,
    pub config: PathBuf,
    socket: Option<PathBuf>,
    pub log: PathBuf,
    stop_grace: Duration,
    podman_stack: Option<String>,
    /// Dropped after the daemon stopped (fields drop after `Drop::drop`).
    _dir: Option<tempfile::TempDir>,
}

impl TestDaemon {
    /// A builder for `prometheus-stack --config CONFIG run` with a clean environment,
    /// stdin from /dev/null and both outputs to `daemon.log` beside the config.
    pub fn builder(config: &Path) -> DaemonBuilder {
        let mut cmd = super::stack_command(config);
        cmd.arg("run").stdin(Stdio::null());
        for v in CLEAN_ENV {
            cmd.env_remove(v);
        }
        let dir = config.parent().expect("config file in a folder");
        DaemonBuilder {
            cmd,
            config: config.to_path_buf(),
            socket: None,
            log: dir.join("daemon.log"),
            stdout: None,
            append: false,
            stop_grace: Duration::from_secs(30),
            podman_stack: None,
            dir: None,
        }
    }

    /// Wraps a daemon a test spawned itself from [`DaemonBuilder::wired_command`].
    pub fn adopt(child: Child, config: &Path, socket: Option<&Path>, log: &Path) -> TestDaemon {
        TestDaemon {
            child,
            config: config.to_path_buf(),
            socket: socket.map(Path::to_path_buf),
            log: log.to_path_buf(),
            stop_grace: Duration::from_secs(30),
            podman_stack: None,
            _dir: None,
        }
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The control socket (panics when the builder was not told it).
    pub fn socket(&self) -> &Path {
        self.socket
            .as_deref()
            .expect("TestDaemon built without .socket()")
    }

    /// Everything the daemon wrote to its log so far.
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Panics with the log when the daemon has exited.
    /// (A zombie counts as exited: no `&mut` needed to notice.)
    pub fn assert_running(&self, doing: &str) {
        if !super::stack::alive(self.pid()) {
            panic!("daemon exited while {doing}:\n{}", self.log_text());
        }
    }

    /// Waits until the control socket answers; panics with the log otherwise.
    pub fn wait_ready(&self, within: Duration) {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if self.api_get("/v1/status").is_some() {
                return;
            }
            self.assert_running("starting");
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("daemon socket never answered:\n{}", self.log_text());
    }

    /// Runs the CLI with `args` against this daemon's config (clean environment).
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut c = super::stack_command(&self.config);
        for v in CLEAN_ENV {
            c.env_remove(v);
        }
        c.env_remove("LD_LIBRARY_PATH")
            .args(args)
            .output()
            .expect("run the CLI")
    }

    /// stdout of a CLI command that must succeed.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let o = self.cli(args);
        assert!(
            o.status.success(),
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Raw HTTP over the control socket; None when nobody answers.
    pub fn request(&self, method: &str, path: &str) -> Option<(u16, String)> {
        let mut s = std::os::unix::net::UnixStream::connect(self.socket.as_ref()?).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        )
        .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        let code = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, body.to_string()))
    }

    /// A JSON answer of the control API; None unless it answered 200 with JSON.
    pub fn api_get(&self, path: &str) -> Option<Value> {
        let (code, body) = self.request("GET", path)?;
        (code == 200).then(|| serde_json::from_str(&body).ok())?
    }

    /// The body of a GET on the control API that must answer 2xx (through curl: a real
    /// HTTP client).
    pub fn control_get(&self, path: &str) -> String {
        super::http::http_get_unix(self.socket(), path)
    }

    /// A unit's recent log lines through the control API.
    pub fn unit_logs(&self, name: &str) -> String {
        self.control_get(&format!("/v1/units/{name}/logs?n=1000"))
    }

    /// The status snapshot (over the socket when known, else [`TestDaemon::status_cli`]);
    /// None while the daemon does not answer.
    pub fn status(&self) -> Option<Value> {
        if self.socket.is_some() {
            return self.api_get("/v1/status");
        }
        self.status_cli()
    }

    /// `status --json` through the CLI (which adds the `gpu` snapshot); None while the
    /// daemon does not answer.
    pub fn status_cli(&self) -> Option<Value> {
        let o = self.cli(&["status", "--json"]);
        if !o.status.success() {
            return None;
        }
        serde_json::from_slice(&o.stdout).ok()
    }

    /// One unit's status; None while the daemon does not answer or has no such unit.
    pub fn unit(&self, name: &str) -> Option<Value> {
        super::status_unit(&self.status()?, name)
    }

    /// One unit's status; panics when the daemon does not answer or has no such unit.
    pub fn unit_status(&self, name: &str) -> Value {
        let s = self.status().expect("the daemon answers status");
        super::status_unit(&s, name).unwrap_or_else(|| panic!("no unit {name} in {s}"))
    }

    /// Polls the snapshot until `f` holds; panics with the last one and the log.
    pub fn wait_until(&self, what: &str, timeout: Duration, f: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + timeout;
        let mut last = Value::Null;
        while Instant::now() < end {
            self.assert_running(&format!("waiting for {what}"));
            if let Some(s) = self.status() {
                if f(&s) {
                    return s;
                }
                last = s;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "timed out after {timeout:?} waiting for {what}; last status:\n{}\n--- daemon log ---\n{}",
            serde_json::to_string_pretty(&last).unwrap(),
            super::stack::tail(&self.log_text(), 80)
        );
    }

    /// Polls until `pred` accepts the unit's status; returns it.
    pub fn wait_unit(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let s = self.wait_until(&format!("{name} {what}"), timeout, |s| {
            super::status_unit(s, name).is_some_and(|u| pred(&u))
        });
        super::status_unit(&s, name).unwrap()
    }

    /// Waits until the unit is in `state` ("healthy", "completed", …).
    pub fn wait_state(&self, name: &str, state: &str, timeout: Duration) -> Value {
        self.wait_unit(name, state, timeout, |u| u["state"] == state)
    }

    /// Waits until every unit is healthy (longrun) or completed (oneshot); panics with the
    /// states and the log as soon as one fails.
    pub fn wait_all_up(&self, timeout: Duration) -> Vec<(String, String)> {
        let s = self.wait_until("every unit up", timeout, |s| {
            let units = s["units"].as_array().cloned().unwrap_or_default();
            if let Some(u) = units.iter().find(|u| u["state"] == "failed") {
                panic!("a unit failed: {u}\n{s:#}");
            }
            !units.is_empty()
                && units
                    .iter()
                    .all(|u| u["state"] == "healthy" || u["state"] == "completed")
        });
        s["units"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                let text = |k: &str| u[k].as_str().unwrap_or("").to_string();
                (text("name"), text("state"))
            })
            .collect()
    }

    /// [`TestDaemon::wait_all_up`] as sorted `"unit state"` lines, for one `assert_eq!`.
    pub fn wait_all_up_sorted(&self, timeout: Duration) -> Vec<String> {
        let mut lines: Vec<String> = self
            .wait_all_up(timeout)
            .into_iter()
            .map(|(n, s)| format!("{n} {s}"))
            .collect();
        lines.sort();
        lines
    }

    /// SIGTERM; waits for the exit and returns its status (panics after the grace time).
    pub fn terminate(&mut self) -> ExitStatus {
        super::stack::signal(self.pid(), libc::SIGTERM);
        super::stack::wait_child(&mut self.child, self.stop_grace)
            .unwrap_or_else(|| panic!("daemon did not exit after SIGTERM:\n{}", self.log_text()))
    }

    /// SIGTERM and wait (units stopped in order); SIGKILL after the grace time.
    pub fn stop(&mut self) {
        super::stop_child(
            &mut self.child,
            nix::sys::signal::Signal::SIGTERM,
            self.stop_grace,
        );
    }

    /// SIGKILL to the daemon alone (its units live on, as after `kill -9` or an OOM kill).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
        if let Some(stack) = &self.podman_stack {
            super::podman::cleanup_stack(stack);
        }
    }
}
