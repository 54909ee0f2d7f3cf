//! Component knowledge: each preset turns a few config lines into units, secrets and routes.

use crate::config::model::{ConfigFile, Preset, ServiceSection};
use crate::config::Issue;
use crate::plan::{
    blank_unit, Backoff, Condition, Dependency, Exec, RestartPolicy, Route, SecretSpec, StackInfo,
    Unit, UnitKind,
};
use std::collections::BTreeMap;
use std::path::Path;

pub mod common;
pub mod lobechat;
pub mod logto;
pub mod objects;
pub mod postgres;
pub mod tasks;

/// What a preset sees: the whole file (to find its peers) and its own section.
pub struct PresetCtx<'a> {
    pub cfg: &'a ConfigFile,
    pub stack: &'a StackInfo,
    /// The unit name (`services.NAME`).
    pub name: &'a str,
    pub section: &'a ServiceSection,
    /// `services.NAME`, for issues.
    pub key: String,
    /// Folder of the config file (relative paths).
    pub base_dir: &'a Path,
}

impl PresetCtx<'_> {
    /// The first unit in the config using this preset: (name, section).
    pub fn find_preset(&self, preset: Preset) -> Option<(&str, &ServiceSection)> {
        self.cfg
            .services
            .iter()
            .find(|(_, s)| s.preset == Some(preset) && s.enabled != Some(false))
            .map(|(n, s)| (n.as_str(), s))
    }
}

/// What a preset produces. The unit named like the section is the main unit: the
/// operator's keys are applied over it afterwards, so every preset field can be overridden.
#[derive(Default)]
pub struct Expansion {
    pub units: Vec<Unit>,
    pub secrets: BTreeMap<String, SecretSpec>,
    /// (host, route) pairs merged into `[[proxy.site]]`.
    pub routes: Vec<(String, Route)>,
    pub issues: Vec<Issue>,
    pub warnings: Vec<String>,
}

/// Expands `preset = "…"` for one section.
pub fn expand(preset: Preset, ctx: &PresetCtx) -> Expansion {
    match preset {
        Preset::Postgres => postgres::expand(ctx),
        Preset::Rustfs => objects::expand(objects::Flavor::RustFs, ctx),
        Preset::Minio => objects::expand(objects::Flavor::Minio, ctx),
        Preset::Logto => logto::expand(ctx),
        Preset::Lobechat => lobechat::expand(ctx),
    }
}

/// A provisioning oneshot (`NAME-init`) that runs `exec` once `server` is healthy and is
/// retried on failure, 1 s doubling to 30 s: the server may still be settling.
pub(crate) fn init_unit(name: &str, key: &str, origin: &str, server: &str, exec: Exec) -> Unit {
    let mut u = blank_unit(name, key, origin);
    u.kind = UnitKind::Oneshot;
    u.exec = exec;
    u.depends_on.push(Dependency {
        unit: server.to_string(),
        condition: Condition::Healthy,
    });
    u.restart = RestartPolicy::OnFailure;
    u.backoff = Backoff {
        initial: std::time::Duration::from_secs(1),
        max: std::time::Duration::from_secs(30),
        reset_after: std::time::Duration::from_secs(60),
    };
    u
}

#[cfg(test)]
mod tests {
    use crate::plan::{build, BuildOptions};

    #[test]
    fn an_unknown_preset_is_one_issue_naming_the_known_ones() {
        let text = "[services.db]\npreset = \"mysql\"\n".to_string();
        let (cfg, src) = crate::config::load_str("t.toml", None, text).unwrap();
        let err = build(&cfg, &src, BuildOptions { check_host: false })
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("services.db.preset")
                && err.contains(
                    "unknown preset \"mysql\"; this build knows: postgres, rustfs, minio, logto, lobechat"
                ),
            "{err}"
        );
        // Not expanded as a generic unit: no follow-up "needs command".
        assert!(
            err.contains("1 problem") && !err.contains("command"),
            "{err}"
        );
    }
}
