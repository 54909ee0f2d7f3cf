//! The real daemon binary under test: start, poll its control socket, stop, kill.

use prometheus_stack::control::Client;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

/// A running `prometheus-stack run`.
pub struct Daemon {
    pub child: Child,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts the daemon on `config`; its stderr goes to `log` (appended).
    pub fn start(config: &Path, socket: &Path, log: &Path) -> Daemon {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = crate::common::stack_command(config)
            .arg("run")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("RUNTIME_DIRECTORY")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn daemon");
        Daemon {
            child,
            config: config.to_path_buf(),
            socket: socket.to_path_buf(),
            log: log.to_path_buf(),
        }
    }

    /// Starts the daemon on `config`, with `control.sock` and `daemon.log` beside it.
    pub fn start_beside(config: &Path) -> Daemon {
        let dir = config.parent().expect("config file in a folder");
        Daemon::start(config, &dir.join("control.sock"), &dir.join("daemon.log"))
    }

    /// `/v1/status`, or None while the socket does not answer.
    pub async fn status(&self) -> Option<Value> {
        Client::new(&self.socket).get_json("/v1/status").await.ok()
    }

    /// One unit's status.
    pub async fn unit(&self, name: &str) -> Option<Value> {
        crate::common::status_unit(&self.status().await?, name)
    }

    /// Polls until `check` accepts the unit's status; panics with the daemon log on timeout.
    pub async fn wait_unit(
        &mut self,
        name: &str,
        limit: Duration,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let t0 = Instant::now();
        let mut last = Value::Null;
        while t0.elapsed() < limit {
            if let Ok(Some(code)) = self.child.try_wait() {
                panic!(
                    "daemon exited ({code}) while waiting for {name} {what}:\n{}",
                    self.log_text()
                );
            }
            if let Some(u) = self.unit(name).await {
                if check(&u) {
                    return u;
                }
                last = u;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "{name} not {what} after {limit:?}; last status {last}\n--- daemon log ---\n{}",
            self.log_text()
        );
    }

    /// Waits for a state ("healthy", "completed", …).
    pub async fn wait_state(&mut self, name: &str, state: &str, limit: Duration) -> Value {
        let s = state.to_string();
        self.wait_unit(name, limit, state, move |u| u["state"] == s.as_str())
            .await
    }

    /// A unit's recent log lines through the control API.
    pub async fn unit_logs(&self, name: &str) -> String {
        let b = Client::new(&self.socket)
            .call(hyper::Method::GET, &format!("/v1/units/{name}/logs?n=1000"))
            .await
            .expect("logs");
        String::from_utf8_lossy(&b).into_owned()
    }

    /// Runs the CLI against this daemon's config.
    pub fn cli(&self, args: &[&str]) -> Output {
        crate::common::stack_command(&self.config)
            .args(args)
            .env_remove("CREDENTIALS_DIRECTORY")
            .output()
            .expect("run cli")
    }

    /// SIGTERM and wait (units stopped in order).
    pub fn stop(&mut self) {
        crate::common::stop_child(
            &mut self.child,
            nix::sys::signal::Signal::SIGTERM,
            Duration::from_secs(60),
        );
    }

    /// SIGKILL the daemon alone (its units live on, as after `kill -9`).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}
