//! Checks against the machine and across units: ports, users, programs, env files,
//! placeholders left in the shipped config.

use super::*;
use crate::config::model::*;
use crate::config::Issue;
use std::collections::BTreeSet;
use std::path::Path;

/// Two units (or one unit twice) on the same port.
pub(super) fn check_ports(units: &[Unit], issues: &mut Vec<Issue>) {
    let mut seen: BTreeMap<u16, String> = BTreeMap::new();
    for u in units {
        let all = u
            .port
            .map(|p| (format!("{}.port", u.config_key), p))
            .into_iter()
            .chain(
                u.ports
                    .iter()
                    .map(|(n, p)| (format!("{}.ports.{n}", u.config_key), *p)),
            );
        let mut own = BTreeSet::new();
        for (key, p) in all {
            if !own.insert(p) {
                continue;
            }
            if let Some(other) = seen.get(&p) {
                issues.push(Issue::new(
                    key,
                    format!("port {p} is already used by unit {other}"),
                ));
            } else {
                seen.insert(p, u.name.clone());
            }
        }
    }
}

pub(super) fn check_host(u: &Unit, issues: &mut Vec<Issue>) {
    // A container may run as a numeric uid/gid of its image, unknown to the host.
    let numeric = |v: &str| matches!(u.runtime, Runtime::Podman(_)) && v.parse::<u32>().is_ok();
    if let Some(user) = u.user.as_deref().filter(|v| !numeric(v)) {
        if !matches!(nix::unistd::User::from_name(user), Ok(Some(_))) {
            issues.push(Issue::new(
                format!("{}.user", u.config_key),
                format!("unknown user {user:?} (create it with `useradd --system {user}`)"),
            ));
        }
    }
    if let Some(group) = u.group.as_deref().filter(|v| !numeric(v)) {
        if !matches!(nix::unistd::Group::from_name(group), Ok(Some(_))) {
            issues.push(Issue::new(
                format!("{}.group", u.config_key),
                format!("unknown group {group:?}"),
            ));
        }
    }
    for f in &u.env_files {
        if !f.is_file() {
            issues.push(Issue::new(
                format!("{}.env_files", u.config_key),
                format!("env file {} does not exist", f.display()),
            ));
        }
    }
    if let (Runtime::Process, Exec::Command(argv)) = (&u.runtime, &u.exec) {
        if let Some(prog) = argv.first() {
            if let Err(e) = find_executable(prog, u.workdir.as_deref()) {
                issues.push(Issue::new(format!("{}.command", u.config_key), e));
            }
        }
    }
}

/// Resolves a program like `execvp` would; the error says what is wrong with it.
pub fn find_executable(prog: &str, workdir: Option<&Path>) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let check = |p: &Path| -> Result<PathBuf, String> {
        let md = std::fs::metadata(p).map_err(|_| format!("{} does not exist", p.display()))?;
        if !md.is_file() {
            return Err(format!("{} is not a file", p.display()));
        }
        if md.permissions().mode() & 0o111 == 0 {
            return Err(format!("{} is not executable (chmod +x)", p.display()));
        }
        Ok(p.to_path_buf())
    };
    if prog.contains('/') {
        let p = Path::new(prog);
        let p = match (p.is_relative(), workdir) {
            (true, Some(w)) => w.join(p),
            _ => p.to_path_buf(),
        };
        return check(&p);
    }
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let mut last = None;
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let cand = Path::new(dir).join(prog);
        if cand.exists() {
            match check(&cand) {
                Ok(p) => return Ok(p),
                Err(e) => last = Some(e),
            }
        }
    }
    Err(last.unwrap_or_else(|| format!("program {prog:?} not found in PATH")))
}

/// Host names under `.invalid` (RFC 6761: never resolves) are the shipped config's
/// placeholders; `check` points the operator at each one still left to edit.
pub(super) fn check_placeholders(cfg: &ConfigFile, issues: &mut Vec<Issue>) {
    let placeholder = |h: &str| {
        let h = h.trim_end_matches('.').to_ascii_lowercase();
        h == "invalid" || h.ends_with(".invalid")
    };
    let mut found: Vec<(String, &str)> = Vec::new();
    if let Some(d) = &cfg.stack.domain {
        found.push(("stack.domain".into(), d));
    }
    if let Some(p) = &cfg.proxy {
        for (i, s) in p.site.iter().enumerate() {
            found.push((format!("proxy.site.{i}.host"), &s.host));
        }
    }
    for (name, svc) in &cfg.services {
        for (k, v) in [("host", &svc.host), ("admin_host", &svc.admin_host)] {
            if let Some(v) = v {
                found.push((format!("services.{name}.{k}"), v));
            }
        }
    }
    for (key, host) in found.into_iter().filter(|(_, h)| placeholder(h)) {
        issues.push(Issue::new(
            key,
            format!(
                "{host:?} is a placeholder (.invalid never resolves): put your own domain here"
            ),
        ));
    }
}
