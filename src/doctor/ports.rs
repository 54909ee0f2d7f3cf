//! Ports the plan needs are free, or held by the daemon and its units — not by a stranger.

use super::Finding;
use crate::plan::{Plan, UnitKind};
use std::collections::BTreeMap;

/// Every TCP port the plan listens on, with the config key that sets it.
pub fn needed_ports(plan: &Plan) -> Vec<(u16, String)> {
    let mut out: BTreeMap<u16, String> = BTreeMap::new();
    for u in plan.units.iter().filter(|u| u.kind == UnitKind::Longrun) {
        if let Some(p) = u.port {
            out.entry(p).or_insert(format!("{}.port", u.config_key));
        }
        for (n, p) in &u.ports {
            out.entry(*p)
                .or_insert(format!("{}.ports.{n}", u.config_key));
        }
    }
    let listens = plan
        .proxy
        .iter()
        .flat_map(|p| {
            [
                ("proxy.https", Some(&p.https)),
                ("proxy.http", p.http.as_ref()),
            ]
        })
        .chain(
            plan.metrics
                .iter()
                .map(|m| ("metrics.listen", Some(&m.listen))),
        );
    for (key, addr) in listens {
        if let Some(port) = addr.and_then(|a| a.rsplit(':').next()?.parse().ok()) {
            out.entry(port).or_insert(key.to_string());
        }
    }
    out.into_iter().collect()
}

/// Each needed port some process listens on that is neither `daemon` nor its descendant.
pub fn check_ports(ports: &[(u16, String)], daemon: Option<u32>) -> Vec<Finding> {
    let listeners = listening_inodes();
    let owners = socket_owners();
    let mut out = Vec::new();
    for (port, key) in ports {
        let mut holders: Vec<u32> = Vec::new();
        let mut unseen = false;
        for inode in listeners.get(port).into_iter().flatten() {
            match owners.get(inode) {
                Some(pid) => holders.push(*pid),
                None => unseen = true,
            }
        }
        holders.sort_unstable();
        holders.dedup();
        let foreign: Vec<u32> = holders
            .into_iter()
            .filter(|p| daemon.is_none_or(|d| !descends_from(*p, d)))
            .collect();
        if let Some(pid) = foreign.first() {
            out.push(Finding::error(
                "ports",
                format!("port {port} ({key}) is taken by pid {pid} ({}), not by prometheus-stack", comm(*pid)),
                format!("stop that process (`ss -ltnp 'sport = :{port}'` shows it) or set another port in {key}"),
            ));
        } else if unseen && daemon.is_none() {
            out.push(Finding::error(
                "ports",
                format!("port {port} ({key}) is taken by a process this user cannot see"),
                format!("run doctor as root to name it, stop it, or set another port in {key}"),
            ));
        }
    }
    out
}

/// Listening TCP sockets (v4 and v6) by local port: their inodes.
fn listening_inodes() -> BTreeMap<u16, Vec<u64>> {
    let mut out: BTreeMap<u16, Vec<u64>> = BTreeMap::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if cols.len() < 10 || cols[3] != "0A" {
                continue;
            }
            let port = cols[1]
                .rsplit(':')
                .next()
                .and_then(|h| u16::from_str_radix(h, 16).ok());
            if let (Some(port), Ok(inode)) = (port, cols[9].parse::<u64>()) {
                out.entry(port).or_default().push(inode);
            }
        }
    }
    out
}

/// Socket inode → pid, from every /proc/PID/fd this user may read.
fn socket_owners() -> BTreeMap<u64, u32> {
    let mut out = BTreeMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let t = target.to_string_lossy();
            if let Some(inode) = t
                .strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.parse().ok())
            {
                out.entry(inode).or_insert(pid);
            }
        }
    }
    out
}

/// Whether `ancestor` is `pid` or one of its parents.
fn descends_from(pid: u32, ancestor: u32) -> bool {
    let mut cur = pid;
    for _ in 0..64 {
        if cur == ancestor {
            return true;
        }
        match parent(cur) {
            Some(p) if p > 1 => cur = p,
            _ => return false,
        }
    }
    false
}

fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parens: fields follow the last ')'.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    /// A port held by another process (python3 listening) is named with its pid.
    #[test]
    fn a_port_held_by_another_process_is_named_with_its_pid() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let script = format!(
            "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',{port}))\ns.listen()\nprint('up',flush=True)\ntime.sleep(60)"
        );
        let mut child = Command::new("python3")
            .args(["-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "up");
        let pid = child.id();
        let needed = vec![(port, "services.web.port".to_string())];
        let foreign = check_ports(&needed, Some(std::process::id() + 1_000_000));
        // The same holder as a child of "the daemon" (this test process) is ours.
        let ours = check_ports(&needed, Some(std::process::id()));
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(
            foreign,
            vec![Finding::error(
                "ports",
                format!("port {port} (services.web.port) is taken by pid {pid} (python3), not by prometheus-stack"),
                format!("stop that process (`ss -ltnp 'sport = :{port}'` shows it) or set another port in services.web.port"),
            )]
        );
        assert_eq!(ours, vec![]);
        assert_eq!(
            check_ports(&needed, None),
            vec![],
            "free again after the holder exited"
        );
    }
}
