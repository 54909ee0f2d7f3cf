//! Who may use the control socket: the socket's mode (0660, the admin group) is the
//! first gate, but a socket reachable by others (a changed mode, an old installation
//! whose socket group was the units' group) must not hand them the stack. So each
//! connection's peer is checked with `SO_PEERCRED`: root, the daemon's own user and
//! members of the admin group (primary or supplementary) get every command; anyone
//! else gets 403 on every request.

use std::ffi::CString;
use tokio::net::unix::UCred;

/// The admin group when `[control] group` is not set (created by the Debian package).
pub const DEFAULT_ADMIN_GROUP: &str = "prometheus-stack-admin";

/// Who is let in.
#[derive(Debug, Clone)]
pub(crate) struct Admins {
    /// The admin group's name (for messages) and id, when it exists.
    pub group: String,
    pub gid: Option<u32>,
    /// The daemon's effective uid (a daemon run by a user answers that user).
    pub own_uid: u32,
}

impl Admins {
    /// Root, the daemon's user and members of `group` (default [`DEFAULT_ADMIN_GROUP`]).
    pub fn new(group: Option<&str>) -> Self {
        let group = group.unwrap_or(DEFAULT_ADMIN_GROUP).to_string();
        let gid = nix::unistd::Group::from_name(&group)
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw());
        Admins {
            group,
            gid,
            own_uid: nix::unistd::geteuid().as_raw(),
        }
    }

    /// None when the peer may use the socket, else the message it gets.
    pub fn refusal(&self, peer: &UCred) -> Option<String> {
        let uid = peer.uid();
        if uid == 0 || uid == self.own_uid {
            return None;
        }
        if let Some(gid) = self.gid {
            if peer.gid() == gid || peer_groups(peer).contains(&gid) {
                return None;
            }
        }
        Some(format!(
            "permission denied: the control socket is for root and members of group {:?} \
             (you are uid {uid}); ask an administrator to run `adduser USER {}`",
            self.group, self.group
        ))
    }
}

/// The peer's supplementary groups: its live process's (`/proc/PID/status`, when that
/// process still has the peer's uid), else the group database's for its uid.
fn peer_groups(peer: &UCred) -> Vec<u32> {
    if let Some(g) = peer.pid().and_then(|pid| proc_groups(pid, peer.uid())) {
        return g;
    }
    let Ok(Some(user)) = nix::unistd::User::from_uid(peer.uid().into()) else {
        return Vec::new();
    };
    let Ok(name) = CString::new(user.name) else {
        return Vec::new();
    };
    nix::unistd::getgrouplist(&name, user.gid)
        .map(|v| v.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_default()
}

/// `Groups:` of /proc/PID/status, if the process there runs as `uid` (a reused pid
/// belongs to someone else).
fn proc_groups(pid: i32, uid: u32) -> Option<Vec<u32>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status(&status, uid)
}

fn parse_status(status: &str, uid: u32) -> Option<Vec<u32>> {
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|rest| {
                rest.split_whitespace()
                    .filter_map(|n| n.parse::<u32>().ok())
            })
    };
    // Uid: real, effective, saved, fs; SO_PEERCRED holds the effective one.
    if field("Uid:")?.nth(1)? != uid {
        return None;
    }
    Some(field("Groups:")?.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tsh\nUid:\t65534\t65534\t65534\t65534\nGid:\t65534\t65534\t65534\t65534\nGroups:\t4 27 \n";

    #[test]
    fn reads_groups_of_the_process_only_when_it_has_the_uid() {
        assert_eq!(parse_status(STATUS, 65534), Some(vec![4, 27]));
        assert_eq!(parse_status(STATUS, 1000), None);
        let none = STATUS.replace("4 27 ", "");
        assert_eq!(parse_status(&none, 65534), Some(vec![]));
    }
}
