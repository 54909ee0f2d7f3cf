//! `sd_notify` by hand: datagrams to `$NOTIFY_SOCKET` (a path, or an abstract name when it
//! starts with '@'). Everything is a no-op outside systemd.

use crate::supervisor::Handle;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A connection to systemd's notify socket, if there is one.
pub struct Notifier {
    sock: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`.
    pub fn from_env() -> Self {
        let sock = std::env::var_os("NOTIFY_SOCKET").and_then(|p| {
            let p = p.to_string_lossy().into_owned();
            let addr = match p.strip_prefix('@') {
                Some(name) => SocketAddr::from_abstract_name(name.as_bytes()).ok()?,
                None => SocketAddr::from_pathname(&p).ok()?,
            };
            Some((UnixDatagram::unbound().ok()?, addr))
        });
        let pid_ok = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|p| p == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|v| *v > 0 && pid_ok)
            .map(Duration::from_micros);
        Notifier { sock, watchdog }
    }

    /// Whether systemd listens.
    pub fn active(&self) -> bool {
        self.sock.is_some()
    }

    /// Sends newline-separated `KEY=VALUE` assignments; errors are ignored (systemd gone).
    pub fn send(&self, msg: &str) {
        if let Some((s, addr)) = &self.sock {
            let _ = s.send_to_addr(msg.as_bytes(), addr);
        }
    }

    /// Half of the watchdog period, when systemd asked for one.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }
}

/// Keeps systemd informed: READY=1 once startup is over (failures listed in STATUS=),
/// STATUS= on every change, WATCHDOG=1 at half the watchdog period, STOPPING=1 at the end.
pub fn spawn(handle: Handle) -> tokio::task::JoinHandle<()> {
    let n = Notifier::from_env();
    tokio::spawn(async move {
        if !n.active() {
            return;
        }
        let mut rx = handle.subscribe();
        let mut ready_sent = false;
        let mut last_status = String::new();
        let mut tick = n.watchdog_every().map(tokio::time::interval);
        loop {
            let snap = rx.borrow_and_update().clone();
            let status = snap.summary();
            if snap.ready && !ready_sent {
                ready_sent = true;
                n.send(&format!("READY=1\nSTATUS={status}"));
                last_status = status;
            } else if status != last_status {
                n.send(&format!("STATUS={status}"));
                last_status = status;
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                _ = async { match tick.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending().await } } => {
                    n.send("WATCHDOG=1");
                }
            }
        }
    })
}

/// Tells systemd the daemon is stopping.
pub fn stopping() {
    Notifier::from_env().send("STOPPING=1");
}

/// Tells systemd a reload is in progress / finished.
pub fn reloading(done: bool) {
    let n = Notifier::from_env();
    if done {
        n.send("READY=1");
    } else {
        n.send("RELOADING=1");
    }
}
