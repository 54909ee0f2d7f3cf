//! Stopping and removing containers by name, and finding the ones a previous daemon left.

use super::args::{LABEL_STACK, LABEL_UNIT};
use super::{command, env, PodmanError};
use crate::plan::Plan;
use nix::sys::signal::Signal;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// A container carrying our stack label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackContainer {
    pub name: String,
    pub id: String,
    /// Value of the unit label.
    pub unit: Option<String>,
    /// podman's state word (`running`, `exited`, `created`, …).
    pub state: String,
}

#[derive(Deserialize)]
struct PsEntry {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Names", default)]
    names: Vec<String>,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "State", default)]
    state: String,
}

/// Every container (running or not) labelled with this stack.
pub async fn stack_containers(stack: &str) -> Result<Vec<StackContainer>, PodmanError> {
    let filter = format!("label={LABEL_STACK}={stack}");
    let out = command::output(&["ps", "-a", "--filter", &filter, "--format", "json"]).await?;
    parse_ps(&out)
}

fn parse_ps(out: &str) -> Result<Vec<StackContainer>, PodmanError> {
    if out.trim().is_empty() {
        return Ok(Vec::new());
    }
    let entries: Vec<PsEntry> = serde_json::from_str(out).map_err(|source| PodmanError::Parse {
        command: "podman ps --format json".into(),
        source,
    })?;
    Ok(entries
        .into_iter()
        .map(|e| StackContainer {
            name: e.names.into_iter().next().unwrap_or_else(|| e.id.clone()),
            unit: e.labels.and_then(|mut l| l.remove(LABEL_UNIT)),
            id: e.id,
            state: e.state,
        })
        .collect())
}

/// `podman stop -t N NAME`: the container's stop signal, SIGKILL after `timeout`.
pub async fn stop(name: &str, timeout: Duration) -> Result<(), PodmanError> {
    let t = super::args::whole_seconds(timeout).to_string();
    command::output(&["stop", "--ignore", "--time", &t, name])
        .await
        .map(drop)
}

/// Sends one signal to the container's main process.
pub async fn kill(name: &str, signal: Signal) -> Result<(), PodmanError> {
    match command::output(&["kill", "--signal", signal.as_str(), name]).await {
        Err(e) if command::is_no_such_container(&e) => Ok(()),
        Err(PodmanError::Command { stderr, .. }) if stderr.contains("not running") => Ok(()),
        other => other.map(drop),
    }
}

/// `podman rm -f NAME…`, giving each `timeout` for its stop signal first.
pub async fn remove(names: &[String], timeout: Duration) -> Result<(), PodmanError> {
    if names.is_empty() {
        return Ok(());
    }
    let t = super::args::whole_seconds(timeout).to_string();
    let mut args = vec!["rm", "--force", "--ignore", "--time", &t];
    args.extend(names.iter().map(String::as_str));
    command::output(&args).await.map(drop)
}

/// Removes every container of this stack whose unit is not in `keep`, each with its
/// unit's stop timeout (10 s for units the plan no longer has), and their podman secrets.
pub async fn remove_stack_leftovers(plan: &Plan, keep: &[&str]) -> Result<(), PodmanError> {
    let stack = &plan.stack.name;
    let mut by_timeout: BTreeMap<Duration, Vec<String>> = BTreeMap::new();
    for c in stack_containers(stack).await? {
        if c.unit.as_deref().is_some_and(|u| keep.contains(&u)) {
            continue;
        }
        let t = c
            .unit
            .as_deref()
            .and_then(|u| plan.unit(u))
            .map(|u| u.stop_timeout)
            .unwrap_or(Duration::from_secs(10));
        tracing::info!(container = %c.name, state = %c.state, "removing leftover container");
        by_timeout.entry(t).or_default().push(c.name);
    }
    let removals = by_timeout.iter().map(|(t, names)| remove(names, *t));
    for r in futures_util::future::join_all(removals).await {
        r?;
    }
    let secrets: Vec<String> = env::stack_secrets(stack)
        .await?
        .into_iter()
        .filter(|s| {
            let unit = s[env::secret_prefix(stack).len()..].split('.').next();
            !unit.is_some_and(|u| keep.contains(&u))
        })
        .collect();
    env::remove_secrets(&secrets).await;
    // Env files of a daemon that died between writing and deleting them.
    if let Ok(rd) = std::fs::read_dir(super::state_dir(plan)) {
        for e in rd.flatten() {
            let p = e.path();
            let unit = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            if p.extension().is_some_and(|x| x == "env") && !keep.contains(&unit) {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_podman_ps_json() {
        let out = r#"[{"Id":"abc","Names":["st-web"],"Labels":{"io.prometheus-stack.stack":"st","io.prometheus-stack.unit":"web"},"State":"running"},
                      {"Id":"def","Names":["other"],"Labels":null,"State":"exited"}]"#;
        let v = parse_ps(out).unwrap();
        assert_eq!(v[0].name, "st-web");
        assert_eq!(v[0].unit.as_deref(), Some("web"));
        assert_eq!(v[1].unit, None);
        assert_eq!(v[1].state, "exited");
        assert!(parse_ps("").unwrap().is_empty());
    }
}
