//! One `[services.NAME]` section applied over a unit: the generic defaults, or a
//! preset's choices, overridden by what the operator wrote.

use super::*;
use crate::config::model::*;
use crate::config::Issue;
use std::path::Path;
use std::str::FromStr;

use crate::stack::common::{absolute, uses_podman};

/// A unit with the generic defaults; presets start from this too.
pub fn blank_unit(name: &str, key: &str, origin: &str) -> Unit {
    Unit {
        name: name.into(),
        kind: UnitKind::Longrun,
        exec: Exec::Command(Vec::new()),
        runtime: Runtime::Process,
        user: None,
        group: None,
        workdir: None,
        env: BTreeMap::new(),
        env_files: Vec::new(),
        port: None,
        ports: BTreeMap::new(),
        depends_on: Vec::new(),
        health: None,
        restart: RestartPolicy::OnFailure,
        backoff: Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            reset_after: Duration::from_secs(10),
        },
        crash_loop: CrashLoop {
            failures: 5,
            window: Duration::from_secs(60),
        },
        stop_signal: Signal::SIGTERM,
        stop_timeout: Duration::from_secs(10),
        gpu: None,
        prepare: None,
        origin: origin.into(),
        config_key: key.into(),
    }
}

/// Where a section is applied: the whole file, the stack, the config's folder, its key.
pub(super) struct SectionEnv<'a> {
    pub cfg: &'a ConfigFile,
    pub stack: &'a StackInfo,
    /// Folder of the config file (relative paths).
    pub base: &'a Path,
    /// `services.NAME`, for issues.
    pub key: &'a str,
}

/// Applies what the operator wrote over the defaults (or over the preset's choices).
pub(super) fn apply_section(
    u: &mut Unit,
    svc: &ServiceSection,
    env: &SectionEnv,
    issues: &mut Vec<Issue>,
    secrets: &mut BTreeMap<String, SecretSpec>,
) {
    let key = env.key;
    apply_exec(u, svc, key, issues);
    if uses_podman(env.cfg, svc) {
        apply_podman(u, svc, env.stack, key, issues);
    } else if svc.image.is_some() {
        // `runtime = "process"` wins over an image (and over a preset's container).
        u.runtime = Runtime::Process;
    }
    apply_process(u, svc, env.base, secrets);
    if let Some(h) = &svc.health {
        u.health = health_from(h, &format!("{key}.health"), issues, u.health.as_ref());
    }
    apply_restarts(u, svc, key, issues);
    apply_stop(u, svc, key, issues);
    if let Some(GpuUse::Policy(p)) = &svc.gpu {
        u.gpu = Some(GpuPolicy {
            min_free: p.min_free.map(|b| b.0),
            max_used: p.max_used.map(|b| b.0),
            grace: p.grace.map(|d| d.0).unwrap_or(Duration::from_secs(120)),
            wait_timeout: p
                .wait_timeout
                .map(|d| d.0)
                .unwrap_or(Duration::from_secs(600)),
        });
    }
}

/// `kind` and `command`.
fn apply_exec(u: &mut Unit, svc: &ServiceSection, key: &str, issues: &mut Vec<Issue>) {
    if let Some(k) = svc.kind {
        u.kind = match k {
            KindName::Longrun => UnitKind::Longrun,
            KindName::Oneshot => UnitKind::Oneshot,
        };
        if u.kind == UnitKind::Oneshot && svc.restart.is_none() {
            u.restart = RestartPolicy::Never;
        }
    }
    if let Some(c) = &svc.command {
        if c.is_empty() || c[0].is_empty() {
            issues.push(Issue::new(format!("{key}.command"), "must name a program"));
        }
        u.exec = Exec::Command(c.clone());
    }
}

/// What the process sees: workdir, env, env files, user, group, ports.
fn apply_process(
    u: &mut Unit,
    svc: &ServiceSection,
    base: &Path,
    secrets: &mut BTreeMap<String, SecretSpec>,
) {
    if let Some(w) = &svc.workdir {
        u.workdir = Some(absolute(base, w));
    }
    for (k, v) in &svc.env {
        u.env
            .insert(k.clone(), parse_env_value(v, &u.name, secrets));
    }
    u.env_files
        .extend(svc.env_files.iter().map(|p| absolute(base, p)));
    if svc.user.is_some() {
        u.user = svc.user.clone();
    }
    if svc.group.is_some() {
        u.group = svc.group.clone();
    }
    if svc.port.is_some() {
        u.port = svc.port;
    }
    for (k, v) in &svc.ports {
        u.ports.insert(k.clone(), *v);
    }
}

/// `restart`, `backoff` and `crash_loop`.
fn apply_restarts(u: &mut Unit, svc: &ServiceSection, key: &str, issues: &mut Vec<Issue>) {
    if let Some(r) = svc.restart {
        u.restart = match r {
            RestartName::Always => RestartPolicy::Always,
            RestartName::OnFailure => RestartPolicy::OnFailure,
            RestartName::Never => RestartPolicy::Never,
        };
    }
    if let Some(b) = &svc.backoff {
        if let Some(i) = b.initial {
            u.backoff.initial = i.0;
        }
        if let Some(m) = b.max {
            u.backoff.max = m.0;
        }
        if let Some(r) = b.reset_after {
            u.backoff.reset_after = r.0;
        }
        if u.backoff.max < u.backoff.initial {
            issues.push(Issue::new(
                format!("{key}.backoff.max"),
                "must not be below backoff.initial",
            ));
        }
    }
    if let Some(c) = &svc.crash_loop {
        if let Some(f) = c.failures {
            if f == 0 {
                issues.push(Issue::new(
                    format!("{key}.crash_loop.failures"),
                    "must be at least 1",
                ));
            }
            u.crash_loop.failures = f;
        }
        if let Some(w) = c.window {
            u.crash_loop.window = w.0;
        }
    }
}

/// `stop_signal` and `stop_timeout`.
fn apply_stop(u: &mut Unit, svc: &ServiceSection, key: &str, issues: &mut Vec<Issue>) {
    if let Some(s) = &svc.stop_signal {
        let name = if s.starts_with("SIG") {
            s.clone()
        } else {
            format!("SIG{s}")
        };
        match Signal::from_str(&name.to_uppercase()) {
            Ok(sig) => u.stop_signal = sig,
            Err(_) => issues.push(Issue::new(
                format!("{key}.stop_signal"),
                format!("unknown signal {s:?}; use e.g. \"SIGTERM\", \"SIGINT\", \"SIGQUIT\""),
            )),
        }
    }
    if let Some(t) = svc.stop_timeout {
        u.stop_timeout = t.0;
    }
}

/// The container settings: the operator's image over the preset's, volumes added to the
/// preset's own (its data dir), GPUs passed in when asked.
fn apply_podman(
    u: &mut Unit,
    svc: &ServiceSection,
    stack: &StackInfo,
    key: &str,
    issues: &mut Vec<Issue>,
) {
    match (&svc.image, &u.runtime) {
        (Some(image), prev) => {
            let mut volumes = match prev {
                Runtime::Podman(p) => p.volumes.clone(),
                Runtime::Process => Vec::new(),
            };
            volumes.extend(svc.volumes.iter().map(|v| resolve_volume(v, stack)));
            let gpu_devices = match &svc.gpu {
                Some(GpuUse::Flag(b)) => *b,
                Some(GpuUse::Policy(p)) => p.devices.unwrap_or(true),
                None => false,
            };
            let caps = match (&svc.capabilities, prev) {
                (Some(list), _) => capabilities(list, key, issues),
                (None, Runtime::Podman(p)) => p.caps.clone(),
                (None, Runtime::Process) => generic_capabilities(),
            };
            u.runtime = Runtime::Podman(PodmanSpec {
                image: image.clone(),
                volumes,
                init: svc.init.unwrap_or(true),
                gpu_devices,
                caps,
                // The preset's non-root default for its image stays (the unit's `user` wins).
                image_user: match prev {
                    Runtime::Podman(p) => p.image_user,
                    Runtime::Process => None,
                },
            });
        }
        (None, Runtime::Podman(p)) => {
            if let Some(list) = &svc.capabilities {
                let caps = capabilities(list, key, issues);
                let mut p = p.clone();
                p.caps = caps;
                u.runtime = Runtime::Podman(p);
            }
        }
        (None, Runtime::Process) => issues.push(Issue::new(
            format!("{key}.image"),
            "runtime = \"podman\" needs image = \"registry/name:tag\" (loaded offline with `prometheus-stack bundle import`)",
        )),
    }
}

/// A generic container's capabilities when the config names none: podman's default set
/// without SETFCAP, SETPCAP and SYS_CHROOT, which no service needs at run time. The rest
/// stays so an operator's image that starts as root and drops to its own user (gosu,
/// su-exec, chown of its data dir) keeps working; `capabilities = []` drops them all.
pub(crate) fn generic_capabilities() -> Capabilities {
    Capabilities::Only(
        [
            "CHOWN",
            "DAC_OVERRIDE",
            "FOWNER",
            "FSETID",
            "KILL",
            "NET_BIND_SERVICE",
            "SETGID",
            "SETUID",
        ]
        .map(String::from)
        .to_vec(),
    )
}

/// `capabilities = [...]` as upper-case names without `CAP_`; a name that is not
/// letters, digits and `_` is an issue (it would reach podman's command line).
fn capabilities(list: &[String], key: &str, issues: &mut Vec<Issue>) -> Capabilities {
    let mut out = Vec::new();
    for c in list {
        let up = c.to_ascii_uppercase();
        let name = up.strip_prefix("CAP_").unwrap_or(&up);
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            issues.push(Issue::new(
                format!("{key}.capabilities"),
                format!(
                    "{c:?} is not a capability name (e.g. \"CHOWN\" or \"CAP_NET_BIND_SERVICE\")"
                ),
            ));
            continue;
        }
        if !out.iter().any(|o: &String| o == name) {
            out.push(name.to_string());
        }
    }
    Capabilities::Only(out)
}

/// `${secret:NAME}` inside a config env value becomes a generated secret.
pub(super) fn parse_env_value(
    v: &str,
    unit: &str,
    secrets: &mut BTreeMap<String, SecretSpec>,
) -> EnvValue {
    let mut out = EnvValue::default();
    let mut rest = v;
    while let Some(start) = rest.find("${secret:") {
        let after = &rest[start + 9..];
        let Some(end) = after.find('}') else { break };
        if start > 0 {
            out = out.push_text(&rest[..start]);
        }
        let name = &after[..end];
        out = out.push_secret(name, Encoding::Raw);
        let spec = secrets
            .entry(name.to_string())
            .or_insert_with(|| SecretSpec {
                kind: SecretKind::Random { bytes: 32 },
                owner: None,
                consumers: Vec::new(),
                rotate: None,
                description: "generated for the config's env".into(),
            });
        if !spec.consumers.iter().any(|c| c == unit) {
            spec.consumers.push(unit.to_string());
        }
        rest = &after[end + 1..];
    }
    if !rest.is_empty() || out.0.is_empty() {
        out = out.push_text(rest);
    }
    out
}

pub(super) fn resolve_volume(v: &str, stack: &StackInfo) -> String {
    match v.split_once(':') {
        Some((host, rest)) if !host.starts_with('/') && !host.starts_with('.') => format!(
            "{}:{rest}",
            stack.data_dir.join("volumes").join(host).display()
        ),
        _ => v.to_string(),
    }
}

pub(super) fn health_from(
    h: &HealthSection,
    key: &str,
    issues: &mut Vec<Issue>,
    prev: Option<&Health>,
) -> Option<Health> {
    let kinds = [
        h.http.is_some(),
        h.tcp.is_some(),
        h.exec.is_some(),
        h.log.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    let probe = if kinds > 1 {
        issues.push(Issue::new(key, "give exactly one of http, tcp, exec, log"));
        return None;
    } else if let Some(u) = &h.http {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            issues.push(Issue::new(
                format!("{key}.http"),
                "must be an http:// or https:// URL",
            ));
        }
        Probe::Http {
            url: u.clone(),
            expect: None,
        }
    } else if let Some(t) = &h.tcp {
        if t.rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .is_none()
        {
            issues.push(Issue::new(format!("{key}.tcp"), "must be host:port"));
        }
        Probe::Tcp(t.clone())
    } else if let Some(e) = &h.exec {
        if e.is_empty() {
            issues.push(Issue::new(format!("{key}.exec"), "must name a program"));
        }
        Probe::Exec(e.clone())
    } else if let Some(l) = &h.log {
        Probe::Log(l.clone())
    } else if let Some(p) = prev {
        p.probe.clone()
    } else {
        issues.push(Issue::new(key, "give one of http, tcp, exec, log"));
        return None;
    };
    let d = prev.cloned();
    Some(Health {
        probe,
        interval: h
            .interval
            .map(|d| d.0)
            .or(d.as_ref().map(|d| d.interval))
            .unwrap_or(Duration::from_secs(2)),
        timeout: h
            .timeout
            .map(|d| d.0)
            .or(d.as_ref().map(|d| d.timeout))
            .unwrap_or(Duration::from_secs(1)),
        retries: h.retries.or(d.as_ref().map(|d| d.retries)).unwrap_or(3),
        start_period: h
            .start_period
            .map(|d| d.0)
            .or(d.as_ref().map(|d| d.start_period))
            .unwrap_or(Duration::from_secs(30)),
    })
}
