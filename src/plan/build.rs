//! Config → Plan: defaults, preset expansion, and every semantic check with its key.

use super::*;
use crate::config::model::*;
use crate::config::{ConfigError, Issue, Source};
use crate::stack::{self, Expansion, PresetCtx};
use std::collections::BTreeSet;
use std::path::Path;
use std::str::FromStr;

/// What `build` checks beyond the file itself.
#[derive(Debug, Clone, Copy)]
pub struct BuildOptions {
    /// Check the host: commands exist and are executable, users exist, cert files exist.
    pub check_host: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions { check_host: true }
    }
}

/// Reads, parses and builds in one step.
pub fn build_from_file(path: &Path, opts: BuildOptions) -> Result<Plan, ConfigError> {
    let (cfg, src) = crate::config::load_file(path)?;
    build(&cfg, &src, opts)
}

/// Builds the plan; every problem found is returned at once, located by line.
pub fn build(cfg: &ConfigFile, src: &Source, opts: BuildOptions) -> Result<Plan, ConfigError> {
    let mut issues = src.parse_issues.clone();
    let base = src.base_dir();
    let stack = stack_info(cfg, &base);
    if opts.check_host {
        // Not for `bundle create` and friends, which run before the file is edited.
        check_placeholders(cfg, &mut issues);
    }
    let control = ControlInfo {
        socket: cfg
            .control
            .socket
            .as_ref()
            .map(|p| absolute(&base, p))
            .unwrap_or_else(|| stack.runtime_dir.join("control.sock")),
        group: cfg.control.group.clone(),
    };

    let mut units: Vec<Unit> = Vec::new();
    let mut secrets = BTreeMap::new();
    let mut preset_routes: Vec<(String, Route)> = Vec::new();
    let mut warnings = Vec::new();
    // Conditions are decided once every unit is known (plain deps need the target's health).
    let mut raw_deps: Vec<(String, String, Option<ConditionName>)> = Vec::new();

    for (name, svc) in &cfg.services {
        if svc.enabled == Some(false) {
            continue;
        }
        let key = format!("services.{name}");
        if !valid_unit_name(name) {
            issues.push(Issue::new(
                &key,
                "unit names use lowercase letters, digits and '-' (they become container names)",
            ));
            continue;
        }
        let mut exp = match &svc.preset {
            Some(p) => {
                let ctx = PresetCtx {
                    cfg,
                    stack: &stack,
                    name,
                    section: svc,
                    key: key.clone(),
                    base_dir: &base,
                };
                stack::expand(p, &ctx)
            }
            None => {
                let mut e = Expansion::default();
                if svc.command.is_none() && effective_runtime(cfg, svc) == RuntimeName::Process {
                    e.issues.push(Issue::new(
                        format!("{key}.command"),
                        "missing: a unit without a preset needs command = [\"program\", \"arg\", …]",
                    ));
                }
                e.units.push(blank_unit(name, &key, "generic"));
                e
            }
        };
        issues.append(&mut exp.issues);
        warnings.append(&mut exp.warnings);
        secrets.append(&mut exp.secrets);
        preset_routes.append(&mut exp.routes);
        for mut u in exp.units {
            let main = u.name == *name;
            if main {
                apply_section(
                    &mut u,
                    svc,
                    cfg,
                    &stack,
                    &base,
                    &key,
                    &mut issues,
                    &mut secrets,
                );
                if let Some(d) = &svc.depends_on {
                    match d {
                        DependsOn::List(l) => {
                            for dep in l {
                                raw_deps.push((u.name.clone(), dep.clone(), None));
                            }
                        }
                        DependsOn::Map(m) => {
                            for (dep, c) in m {
                                raw_deps.push((u.name.clone(), dep.clone(), Some(*c)));
                            }
                        }
                    }
                }
            }
            if units.iter().any(|x| x.name == u.name) {
                issues.push(Issue::new(
                    &key,
                    format!(
                        "unit name {:?} is used twice (a preset adds it too)",
                        u.name
                    ),
                ));
                continue;
            }
            units.push(u);
        }
    }

    // Dependencies.
    for (unit, dep, cond) in raw_deps {
        let key = format!("services.{unit}.depends_on");
        let Some(target) = units.iter().find(|u| u.name == dep) else {
            issues.push(Issue::new(&key, format!("unknown unit {dep:?}")));
            continue;
        };
        let condition = match cond {
            Some(ConditionName::Started) => Condition::Started,
            Some(ConditionName::Healthy) => {
                if target.health.is_none() {
                    issues.push(Issue::new(
                        &key,
                        format!("{dep:?} has no health check, so it can never be \"healthy\""),
                    ));
                }
                Condition::Healthy
            }
            Some(ConditionName::Completed) => {
                if target.kind != UnitKind::Oneshot {
                    issues.push(Issue::new(
                        &key,
                        format!("{dep:?} is a longrun unit; only a oneshot can be \"completed\""),
                    ));
                }
                Condition::Completed
            }
            None if target.kind == UnitKind::Oneshot => Condition::Completed,
            None if target.health.is_some() => Condition::Healthy,
            None => Condition::Started,
        };
        if dep == unit {
            issues.push(Issue::new(&key, format!("{unit:?} depends on itself")));
            continue;
        }
        let u = units
            .iter_mut()
            .find(|u| u.name == unit)
            .expect("unit exists");
        u.depends_on.retain(|d| d.unit != dep);
        u.depends_on.push(Dependency {
            unit: dep,
            condition,
        });
    }
    // Preset-generated edges must name real units too.
    for u in &units {
        for d in &u.depends_on {
            if !units.iter().any(|x| x.name == d.unit) {
                issues.push(Issue::new(
                    &u.config_key,
                    format!(
                        "{} needs unit {:?}, which the config does not define",
                        u.name, d.unit
                    ),
                ));
            }
        }
    }

    let order = match start_order(&units) {
        Ok(o) => o,
        Err(cycle) => {
            let first = cycle.split(" -> ").next().unwrap_or_default().to_string();
            issues.push(Issue::new(
                format!("services.{first}.depends_on"),
                format!("dependency cycle: {cycle}"),
            ));
            units.iter().map(|u| u.name.clone()).collect()
        }
    };
    units.sort_by_key(|u| {
        order
            .iter()
            .position(|n| *n == u.name)
            .unwrap_or(usize::MAX)
    });

    check_ports(&units, &mut issues);
    if opts.check_host {
        for u in &units {
            check_host(u, &mut issues);
        }
    }

    let proxy = cfg
        .proxy
        .as_ref()
        .map(|p| proxy_plan(p, &stack, &base, &units, preset_routes, opts, &mut issues));
    for (name, s) in &secrets {
        if !valid_secret_name(name) {
            issues.push(Issue::new(
                "services",
                format!("bad secret name {name:?} ({})", s.description),
            ));
        }
    }

    let plan = Plan {
        stack,
        control,
        units,
        secrets,
        proxy,
        gpu: GpuPlan {
            enabled: cfg.gpu.enabled,
            interval: cfg.gpu.interval.0,
            alert_used_percent: cfg.gpu.alert_used_percent,
        },
        metrics: cfg.metrics.as_ref().map(|m| MetricsPlan {
            listen: m.listen.clone(),
        }),
        bundle_artifacts: cfg
            .bundle
            .artifacts
            .iter()
            .map(|p| absolute(&base, p))
            .collect(),
        source: PlanSource {
            name: src.name.clone(),
            path: src.path.clone(),
        },
        warnings,
    };
    if cfg.gpu.alert_used_percent > 100 {
        issues.push(Issue::new(
            "gpu.alert_used_percent",
            "must be between 0 and 100",
        ));
    }
    if issues.is_empty() {
        Ok(plan)
    } else {
        let mut issues = src.locate(issues);
        issues.sort_by_key(|i| i.line.unwrap_or(usize::MAX));
        Err(ConfigError::Invalid {
            file: src.name.clone(),
            issues,
        })
    }
}

fn stack_info(cfg: &ConfigFile, base: &Path) -> StackInfo {
    let data_dir = absolute(base, &cfg.stack.data_dir);
    let runtime_dir = match &cfg.stack.runtime_dir {
        Some(p) => absolute(base, p),
        None => match std::env::var_os("RUNTIME_DIRECTORY") {
            // systemd's RuntimeDirectory= may list several; the first is ours.
            Some(v) => PathBuf::from(v.to_string_lossy().split(':').next().unwrap_or("")),
            None if nix::unistd::geteuid().is_root()
                && data_dir == Path::new("/var/lib/prometheus-stack") =>
            {
                PathBuf::from("/run/prometheus-stack")
            }
            None => data_dir.join("run"),
        },
    };
    StackInfo {
        name: cfg.stack.name.clone(),
        domain: cfg.stack.domain.clone(),
        data_dir,
        runtime_dir,
        air_gapped: cfg.stack.air_gapped,
    }
}

/// Relative paths in the file are relative to the file's folder.
pub(crate) fn absolute(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        let joined = base.join(p);
        // Drop "./" segments so paths print cleanly.
        joined.components().collect()
    }
}

fn valid_unit_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 48
        && n.starts_with(|c: char| c.is_ascii_lowercase())
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn valid_secret_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn effective_runtime(cfg: &ConfigFile, svc: &ServiceSection) -> RuntimeName {
    svc.runtime.unwrap_or(cfg.stack.runtime)
}

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

/// Applies what the operator wrote over the defaults (or over the preset's choices).
#[allow(clippy::too_many_arguments)]
fn apply_section(
    u: &mut Unit,
    svc: &ServiceSection,
    cfg: &ConfigFile,
    stack: &StackInfo,
    base: &Path,
    key: &str,
    issues: &mut Vec<Issue>,
    secrets: &mut BTreeMap<String, SecretSpec>,
) {
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
    let runtime = effective_runtime(cfg, svc);
    if runtime == RuntimeName::Podman || svc.image.is_some() {
        match (&svc.image, &u.runtime) {
            (Some(image), prev) => {
                // A preset's own volumes (its data dir) stay; the operator's are added.
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
                u.runtime = Runtime::Podman(PodmanSpec {
                    image: image.clone(),
                    volumes,
                    init: svc.init.unwrap_or(true),
                    gpu_devices,
                });
            }
            (None, Runtime::Podman(_)) => {}
            (None, Runtime::Process) => issues.push(Issue::new(
                format!("{key}.image"),
                "runtime = \"podman\" needs image = \"registry/name:tag\" (loaded offline with `prometheus-stack bundle import`)",
            )),
        }
        if runtime == RuntimeName::Process && svc.runtime == Some(RuntimeName::Process) {
            u.runtime = Runtime::Process;
        }
    }
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
    if let Some(h) = &svc.health {
        u.health = health_from(h, &format!("{key}.health"), issues, u.health.as_ref());
    }
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
    if matches!(u.exec, Exec::Command(ref c) if c.is_empty())
        && matches!(u.runtime, Runtime::Process)
    {
        // Reported once by the generic check above or by the preset.
    }
}

/// `${secret:NAME}` inside a config env value becomes a generated secret.
fn parse_env_value(v: &str, unit: &str, secrets: &mut BTreeMap<String, SecretSpec>) -> EnvValue {
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

fn resolve_volume(v: &str, stack: &StackInfo) -> String {
    match v.split_once(':') {
        Some((host, rest)) if !host.starts_with('/') && !host.starts_with('.') => format!(
            "{}:{rest}",
            stack.data_dir.join("volumes").join(host).display()
        ),
        _ => v.to_string(),
    }
}

fn health_from(
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

fn check_ports(units: &[Unit], issues: &mut Vec<Issue>) {
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

fn check_host(u: &Unit, issues: &mut Vec<Issue>) {
    if let Some(user) = &u.user {
        if !matches!(nix::unistd::User::from_name(user), Ok(Some(_))) {
            issues.push(Issue::new(
                format!("{}.user", u.config_key),
                format!("unknown user {user:?} (create it with `useradd --system {user}`)"),
            ));
        }
    }
    if let Some(group) = &u.group {
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

fn proxy_plan(
    p: &ProxySection,
    stack: &StackInfo,
    base: &Path,
    units: &[Unit],
    preset_routes: Vec<(String, Route)>,
    opts: BuildOptions,
    issues: &mut Vec<Issue>,
) -> ProxyPlan {
    let pki_dir = stack.data_dir.join("pki");
    let mut sites: Vec<Site> = Vec::new();
    for (i, s) in p.site.iter().enumerate() {
        let key = format!("proxy.site.{i}");
        if sites.iter().any(|x| x.host.eq_ignore_ascii_case(&s.host)) {
            issues.push(Issue::new(
                format!("{key}.host"),
                format!("site {:?} is defined twice", s.host),
            ));
        }
        let mut routes = Vec::new();
        for (j, r) in s.routes.iter().enumerate() {
            let rkey = format!("{key}.routes.{j}");
            if !r.path.starts_with('/') {
                issues.push(Issue::new(format!("{rkey}.path"), "must start with '/'"));
            }
            let action = match (&r.to, &r.redirect) {
                (Some(to), None) => resolve_target(to, units, &format!("{rkey}.to"), issues),
                (None, Some(loc)) => Some(RouteAction::Redirect(loc.clone())),
                _ => {
                    issues.push(Issue::new(
                        &rkey,
                        "give exactly one of to = \"unit\" or redirect = \"/path\"",
                    ));
                    None
                }
            };
            if let Some(action) = action {
                routes.push(Route {
                    path: r.path.clone(),
                    action,
                    max_body: r.max_body.map(|b| b.0),
                });
            }
        }
        let cert = s.cert.as_ref().map(|c| absolute(base, c));
        let keyf = s.key.as_ref().map(|c| absolute(base, c));
        if p.tls == TlsMode::Files {
            match (&cert, &keyf) {
                (Some(c), Some(k)) => {
                    if opts.check_host {
                        for (f, what) in [(c, "cert"), (k, "key")] {
                            if !f.is_file() {
                                issues.push(Issue::new(
                                    format!("{key}.{what}"),
                                    format!("{} does not exist (or use tls = \"internal\")", f.display()),
                                ));
                            }
                        }
                    }
                }
                _ => issues.push(Issue::new(
                    &key,
                    format!("site {:?} needs cert and key with tls = \"files\" (or set [proxy] tls = \"internal\")", s.host),
                )),
            }
        }
        sites.push(Site {
            host: s.host.to_ascii_lowercase(),
            cert,
            key: keyf,
            routes,
        });
    }
    for (host, route) in preset_routes {
        let host = host.to_ascii_lowercase();
        let site = match sites.iter_mut().position(|s| s.host == host) {
            Some(i) => &mut sites[i],
            None => {
                if p.tls == TlsMode::Files {
                    issues.push(Issue::new(
                        "proxy.site",
                        format!("add a [[proxy.site]] for {host:?} with cert and key (the presets route it), or use tls = \"internal\""),
                    ));
                }
                sites.push(Site {
                    host: host.clone(),
                    cert: None,
                    key: None,
                    routes: Vec::new(),
                });
                sites.last_mut().expect("just pushed")
            }
        };
        // The operator's own route for the same prefix wins.
        if !site.routes.iter().any(|r| r.path == route.path) {
            site.routes.push(route);
        }
    }
    ProxyPlan {
        https: p.https.clone(),
        http: p.http.clone(),
        max_body: p.max_body.0,
        upstream_timeout: p.upstream_timeout.0,
        connect_timeout: p.connect_timeout.0,
        header_timeout: p.header_timeout.0,
        max_connections: p.max_connections,
        tls: p.tls,
        ca_bundle: (p.tls == TlsMode::Internal).then(|| pki_dir.join("ca.crt")),
        pki_dir,
        sites,
    }
}

fn resolve_target(
    to: &str,
    units: &[Unit],
    key: &str,
    issues: &mut Vec<Issue>,
) -> Option<RouteAction> {
    let (name, port_name) = match to.split_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => {
            return Some(RouteAction::Address(format!("{h}:{p}")))
        }
        Some((n, p)) => (n, Some(p)),
        None => (to, None),
    };
    let Some(u) = units.iter().find(|u| u.name == name) else {
        issues.push(Issue::new(
            key,
            format!("unknown unit {name:?} (or write host:port)"),
        ));
        return None;
    };
    let port = match port_name {
        None => u.port,
        Some(pn) => u.ports.get(pn).copied(),
    };
    match port {
        Some(port) => Some(RouteAction::Unit {
            unit: name.to_string(),
            port,
        }),
        None => {
            issues.push(Issue::new(
                key,
                match port_name {
                    None => format!("unit {name:?} has no port = …"),
                    Some(pn) => format!("unit {name:?} has no ports.{pn}"),
                },
            ));
            None
        }
    }
}

/// Host names under `.invalid` (RFC 6761: never resolves) are the shipped config's
/// placeholders; `check` points the operator at each one still left to edit.
fn check_placeholders(cfg: &ConfigFile, issues: &mut Vec<Issue>) {
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
