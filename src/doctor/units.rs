//! The daemon answers on its control socket, every unit is healthy, none restarted lately.

use super::Finding;
use crate::control::ClientError;
use serde_json::Value;
use std::path::Path;

/// Restarts within this window are reported.
const RECENT_SECS: f64 = 3600.0;

/// The daemon: a finding when the control socket does not answer.
pub fn check_daemon(status: &Result<Value, ClientError>) -> Vec<Finding> {
    match status {
        Ok(_) => Vec::new(),
        Err(ClientError::NoDaemon(path)) => vec![Finding::error(
            "daemon",
            format!("the daemon is not running (nothing answers on {}); only the file-level checks ran", path.display()),
            "systemctl start prometheus-stack (or `prometheus-stack run` in a shell), then run doctor again",
        )],
        Err(e @ ClientError::Denied(_)) => vec![Finding::error(
            "daemon",
            e.to_string(),
            "run doctor as root or as a member of the control group",
        )],
        Err(e) => vec![Finding::error(
            "daemon",
            format!("the daemon does not answer its status: {e}"),
            "journalctl -u prometheus-stack, then systemctl restart prometheus-stack",
        )],
    }
}

/// Every unit in the daemon's `/v1/status` answer: longruns healthy (or running without a
/// health check), oneshots completed, no restart within the last hour.
pub fn check_units(status: &Value, now: f64) -> Vec<Finding> {
    let mut out = Vec::new();
    for u in status["units"].as_array().into_iter().flatten() {
        let name = u["name"].as_str().unwrap_or("?");
        out.extend(unit_state(u, name));
        let restarts = u["restarts"].as_u64().unwrap_or(0);
        let started = u["started_at"].as_f64();
        if let (true, Some(t)) = (restarts > 0, started) {
            let ago = now - t;
            if ago < RECENT_SECS {
                out.push(Finding::warning(
                    "units",
                    format!(
                        "unit {name} restarted {restarts} time{} since the daemon started, the last {} min ago",
                        if restarts == 1 { "" } else { "s" },
                        (ago / 60.0).floor() as u64
                    ),
                    format!("read why in `prometheus-stack logs {name}`"),
                ));
            }
        }
    }
    out
}

fn unit_state(u: &Value, name: &str) -> Option<Finding> {
    let state = u["state"].as_str().unwrap_or("?");
    let oneshot = u["kind"] == "oneshot";
    // The reason usually quotes the last exit already ("exit 3 (restart = never)").
    let why = match (u["reason"].as_str(), u["last_exit"].as_str()) {
        (Some(r), Some(e)) if !r.contains(e) => format!(" ({r}; {e})"),
        (Some(r), _) => format!(" ({r})"),
        (None, Some(e)) => format!(" ({e})"),
        (None, None) => String::new(),
    };
    let logs = format!(
        "read `prometheus-stack logs {name}`, fix the cause, then `prometheus-stack start {name}`"
    );
    match (state, oneshot) {
        ("healthy", false) | ("completed", true) => None,
        // Without a health check, running is as good as it gets.
        ("running", false) if u["health"].is_null() => None,
        ("pending" | "starting" | "running", _) => Some(Finding::warning(
            "units",
            format!(
                "unit {name} is {state}, not yet {}{why}",
                if oneshot { "completed" } else { "healthy" }
            ),
            format!("wait a minute and run doctor again; if it stays {state}, {logs}"),
        )),
        _ => Some(Finding::error(
            "units",
            format!("unit {name} is {state}{why}"),
            logs,
        )),
    }
}

/// The pid of the process listening on the control socket (the daemon), by SO_PEERCRED.
pub fn peer_pid(socket: &Path) -> Option<u32> {
    let s = std::os::unix::net::UnixStream::connect(socket).ok()?;
    let cred = nix::sys::socket::getsockopt(&s, nix::sys::socket::sockopt::PeerCredentials).ok()?;
    u32::try_from(cred.pid()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_daemon_is_the_first_finding_with_the_systemctl_fix() {
        let f = check_daemon(&Err(ClientError::NoDaemon("/run/x.sock".into())));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].message, "the daemon is not running (nothing answers on /run/x.sock); only the file-level checks ran");
        assert!(f[0].fix.starts_with("systemctl start prometheus-stack"));
    }
}
