//! Config → Plan: defaults, preset expansion, and every semantic check with its key.

use super::host_checks::{check_host, check_placeholders, check_ports};
use super::proxy_plan::proxy_plan;
use super::section::{apply_section, blank_unit, SectionEnv};
use super::*;
use crate::config::model::*;
use crate::config::{ConfigError, Issue, Source};
use crate::stack::common::{absolute, uses_podman};
use crate::stack::{self, Expansion, PresetCtx};
use std::path::Path;

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
    let base = src.base_dir();
    let stack = stack_info(cfg, &base);
    let mut issues = src.parse_issues.clone();
    if opts.check_host {
        // Not for `bundle create` and friends, which run before the file is edited.
        check_placeholders(cfg, &mut issues);
    }
    let mut b = Collected::default();
    for (name, svc) in &cfg.services {
        // A preset that could not be read was reported; expanding a generic unit instead
        // would only add confusing follow-up issues.
        let bad_preset = format!("services.{name}.preset");
        let unreadable = src.parse_issues.iter().any(|i| i.key == bad_preset);
        if svc.enabled != Some(false) && !unreadable {
            add_service(cfg, &stack, &base, name, svc, &mut b, &mut issues);
        }
    }
    let raw = std::mem::take(&mut b.raw_deps);
    resolve_dependencies(&mut b.units, raw, &mut issues);
    check_preset_edges(&b.units, &mut issues);
    order_units(&mut b.units, &mut issues);
    check_ports(&b.units, &mut issues);
    if opts.check_host {
        for u in &b.units {
            check_host(u, &mut issues);
        }
    }
    let routes = std::mem::take(&mut b.routes);
    let proxy = cfg
        .proxy
        .as_ref()
        .map(|p| proxy_plan(p, &stack, &base, &b.units, routes, opts, &mut issues));
    check_secret_names(&b.secrets, &mut issues);
    crate::backup::schedule::check(&cfg.backup, &mut issues);
    if cfg.gpu.alert_used_percent > 100 {
        issues.push(Issue::new(
            "gpu.alert_used_percent",
            "must be between 0 and 100",
        ));
    }
    let plan = assemble(cfg, src, &base, stack, b, proxy);
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

/// A `depends_on` entry as written: (unit, dependency, condition).
type RawDep = (String, String, Option<ConditionName>);

/// What the services expand to, before dependencies are resolved and units ordered.
#[derive(Default)]
struct Collected {
    units: Vec<Unit>,
    secrets: BTreeMap<String, SecretSpec>,
    routes: Vec<(String, Route)>,
    warnings: Vec<String>,
    /// Conditions are decided once every unit is known (plain deps need the target's health).
    raw_deps: Vec<RawDep>,
}

/// Expands one `[services.NAME]` and applies the operator's keys over its main unit.
fn add_service(
    cfg: &ConfigFile,
    stack: &StackInfo,
    base: &Path,
    name: &str,
    svc: &ServiceSection,
    b: &mut Collected,
    issues: &mut Vec<Issue>,
) {
    let key = format!("services.{name}");
    if !valid_unit_name(name) {
        issues.push(Issue::new(
            &key,
            "unit names use lowercase letters, digits and '-' (they become container names)",
        ));
        return;
    }
    let mut exp = match &svc.preset {
        Some(p) => {
            let ctx = PresetCtx {
                cfg,
                stack,
                name,
                section: svc,
                key: key.clone(),
                base_dir: base,
            };
            stack::expand(*p, &ctx)
        }
        None => generic(cfg, name, svc, &key),
    };
    issues.append(&mut exp.issues);
    b.warnings.append(&mut exp.warnings);
    b.secrets.append(&mut exp.secrets);
    b.routes.append(&mut exp.routes);
    let env = SectionEnv {
        cfg,
        stack,
        base,
        key: &key,
    };
    for mut u in exp.units {
        if u.name == name {
            apply_section(&mut u, svc, &env, issues, &mut b.secrets);
            b.raw_deps.extend(raw_deps(name, svc));
        }
        if b.units.iter().any(|x| x.name == u.name) {
            issues.push(Issue::new(
                &key,
                format!(
                    "unit name {:?} is used twice (a preset adds it too)",
                    u.name
                ),
            ));
            continue;
        }
        b.units.push(u);
    }
}

/// A unit without a preset: the generic defaults; it needs a command unless it runs an image.
fn generic(cfg: &ConfigFile, name: &str, svc: &ServiceSection, key: &str) -> Expansion {
    let mut e = Expansion::default();
    if svc.command.is_none() && !uses_podman(cfg, svc) {
        e.issues.push(Issue::new(
            format!("{key}.command"),
            "missing: a unit without a preset needs command = [\"program\", \"arg\", …]",
        ));
    }
    e.units.push(blank_unit(name, key, "generic"));
    e
}

/// The section's `depends_on`, as written.
fn raw_deps(unit: &str, svc: &ServiceSection) -> Vec<RawDep> {
    match &svc.depends_on {
        None => Vec::new(),
        Some(DependsOn::List(l)) => l
            .iter()
            .map(|dep| (unit.to_string(), dep.clone(), None))
            .collect(),
        Some(DependsOn::Map(m)) => m
            .iter()
            .map(|(dep, c)| (unit.to_string(), dep.clone(), Some(*c)))
            .collect(),
    }
}

/// The condition of one written edge: as given (checked against the target), else what
/// the target offers (completed for a oneshot, healthy with a health check, started).
fn condition(
    target: &Unit,
    cond: Option<ConditionName>,
    key: &str,
    issues: &mut Vec<Issue>,
) -> Condition {
    let dep = &target.name;
    match cond {
        Some(ConditionName::Started) => Condition::Started,
        Some(ConditionName::Healthy) => {
            if target.health.is_none() {
                issues.push(Issue::new(
                    key,
                    format!("{dep:?} has no health check, so it can never be \"healthy\""),
                ));
            }
            Condition::Healthy
        }
        Some(ConditionName::Completed) => {
            if target.kind != UnitKind::Oneshot {
                issues.push(Issue::new(
                    key,
                    format!("{dep:?} is a longrun unit; only a oneshot can be \"completed\""),
                ));
            }
            Condition::Completed
        }
        None if target.kind == UnitKind::Oneshot => Condition::Completed,
        None if target.health.is_some() => Condition::Healthy,
        None => Condition::Started,
    }
}

/// The operator's `depends_on` edges, conditions decided, replacing a preset's edge to
/// the same unit.
fn resolve_dependencies(units: &mut [Unit], raw: Vec<RawDep>, issues: &mut Vec<Issue>) {
    for (unit, dep, cond) in raw {
        let key = format!("services.{unit}.depends_on");
        let Some(target) = units.iter().find(|u| u.name == dep) else {
            issues.push(Issue::new(&key, format!("unknown unit {dep:?}")));
            continue;
        };
        let condition = condition(target, cond, &key, issues);
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
}

/// Preset-generated edges must name real units too.
fn check_preset_edges(units: &[Unit], issues: &mut Vec<Issue>) {
    for u in units {
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
}

/// Sorts units into start order (dependencies first); a cycle is an issue.
fn order_units(units: &mut [Unit], issues: &mut Vec<Issue>) {
    let order = match start_order(units) {
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
}

fn check_secret_names(secrets: &BTreeMap<String, SecretSpec>, issues: &mut Vec<Issue>) {
    for (name, s) in secrets {
        if !valid_secret_name(name) {
            issues.push(Issue::new(
                "services",
                format!("bad secret name {name:?} ({})", s.description),
            ));
        }
    }
}

/// The plan from its checked parts.
fn assemble(
    cfg: &ConfigFile,
    src: &Source,
    base: &Path,
    stack: StackInfo,
    b: Collected,
    proxy: Option<ProxyPlan>,
) -> Plan {
    let control = ControlInfo {
        socket: cfg
            .control
            .socket
            .as_ref()
            .map(|p| absolute(base, p))
            .unwrap_or_else(|| stack.runtime_dir.join("control.sock")),
        group: cfg.control.group.clone(),
    };
    Plan {
        stack,
        control,
        units: b.units,
        secrets: b.secrets,
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
            .map(|p| absolute(base, p))
            .collect(),
        source: PlanSource {
            name: src.name.clone(),
            path: src.path.clone(),
        },
        warnings: b.warnings,
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
