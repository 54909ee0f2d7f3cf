//! Config → Plan: defaults, preset expansion, and every semantic check with its key.

use super::host_checks::{check_host, check_placeholders, check_ports};
use super::proxy_plan::proxy_plan;
use super::section::{apply_section, blank_unit};
use super::*;
use crate::config::model::*;
use crate::config::{ConfigError, Issue, Source};
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

pub(super) fn effective_runtime(cfg: &ConfigFile, svc: &ServiceSection) -> RuntimeName {
    svc.runtime.unwrap_or(cfg.stack.runtime)
}
