//! Reload: re-read the file, diff the plans by unit definition, restart only what changed
//! (and what depends on it), start new units, stop removed ones. An invalid file changes
//! nothing.

use super::{spawn_unit, stop_in_order, Cmd, Handle, UnitState, UnitStatus};
use crate::config::ConfigError;
use crate::plan::{dependents_closure, BuildOptions, Plan};
use crate::secrets::SecretStore;
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::sync::oneshot;

/// What a reload did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReloadReport {
    /// Units whose definition changed, plus their dependents, in start order.
    pub restarted: Vec<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Settings that only take effect after a daemon restart.
    pub warnings: Vec<String>,
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}\n(nothing was changed; the running units keep the previous config)")]
    Config(#[from] ConfigError),
    #[error("{0} (nothing was changed)")]
    Secrets(#[source] SecretsError),
    #[error("the daemon is shutting down")]
    ShuttingDown,
    #[error(
        "internal error while reading the config: {0} (nothing was changed; please report this)"
    )]
    Internal(String),
}

/// A blocking task that did not return: a panic is a bug to report, a cancellation
/// means the runtime is going away.
fn join_failure(e: tokio::task::JoinError) -> ReloadError {
    match e.try_into_panic() {
        Ok(p) => ReloadError::Internal(super::warden::panic_message(&*p)),
        Err(_) => ReloadError::ShuttingDown,
    }
}

/// Why the plan's secrets could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("secret {secret}: unknown owner user {user:?}")]
    UnknownOwner { secret: String, user: String },
    #[error(transparent)]
    Store(#[from] crate::secrets::SecretError),
}

/// Generates the secrets the plan needs that do not exist yet (owned by their users).
pub fn ensure_secrets(plan: &Plan, store: &SecretStore) -> Result<(), SecretsError> {
    for (name, spec) in &plan.secrets {
        if spec.kind == crate::plan::SecretKind::Provided {
            continue;
        }
        let owner = match &spec.owner {
            Some(user) => match nix::unistd::User::from_name(user) {
                Ok(Some(u)) => Some((u.uid.as_raw(), u.gid.as_raw())),
                _ => {
                    return Err(SecretsError::UnknownOwner {
                        secret: name.clone(),
                        user: user.clone(),
                    })
                }
            },
            None => None,
        };
        store.ensure(name, &spec.kind, owner)?;
    }
    Ok(())
}

/// Re-reads the file the running plan came from and applies it.
pub async fn reload_from_source(handle: &Handle) -> Result<ReloadReport, ReloadError> {
    let current = handle.plan();
    let source = current.source.clone();
    let store = handle.secrets().clone();
    // Reading the file and generating new secrets (RSA keys take CPU seconds) both
    // block: off the async workers, so the proxy and the signal loop keep running.
    let plan = tokio::task::spawn_blocking(move || -> Result<Plan, ReloadError> {
        let plan = match &source.path {
            Some(p) => crate::plan::build_from_file(p, BuildOptions::default())?,
            None => {
                let (cfg, src) = crate::config::load_str(
                    &source.name,
                    None,
                    crate::config::DEFAULT_CONFIG.to_string(),
                )?;
                crate::plan::build(&cfg, &src, BuildOptions::default())?
            }
        };
        ensure_secrets(&plan, &store).map_err(ReloadError::Secrets)?;
        Ok(plan)
    })
    .await
    .map_err(join_failure)??;
    handle.reload(Arc::new(plan)).await
}

/// What changed between two plans.
struct Diff {
    report: ReloadReport,
    /// Units whose own definition changed.
    changed: BTreeSet<String>,
    /// `changed` and everything depending on it.
    restart: BTreeSet<String>,
}

pub(crate) async fn apply(handle: &Handle, new: Arc<Plan>) -> Result<ReloadReport, ReloadError> {
    let shared = &handle.shared;
    let _guard = shared.reload_lock.lock().await;
    if shared
        .shutting_down
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return Err(ReloadError::ShuttingDown);
    }
    let old = shared.plan();
    let diff = diff(&old, &new);
    remove_units(handle, &old, &diff.report.removed).await;
    install_plan(handle, &new, &diff.report.restarted);
    reload_units(handle, &new, &diff).await;
    for name in &diff.report.added {
        if let Some(u) = new.unit(name) {
            spawn_unit(shared, Arc::new(u.clone()));
        }
    }
    Ok(diff.report)
}

/// Compares the plans by unit definition.
fn diff(old: &Plan, new: &Plan) -> Diff {
    let mut report = ReloadReport::default();
    if old.control.socket != new.control.socket {
        report.warnings.push(format!(
            "control.socket changed to {}; it takes effect when the daemon restarts",
            new.control.socket.display()
        ));
    }
    let mut changed = BTreeSet::new();
    for u in &new.units {
        match old.unit(&u.name) {
            None => report.added.push(u.name.clone()),
            Some(o) if Plan::fingerprint(o) != Plan::fingerprint(u) => {
                changed.insert(u.name.clone());
            }
            Some(_) => {}
        }
    }
    report.removed = old
        .units
        .iter()
        .filter(|u| new.unit(&u.name).is_none())
        .map(|u| u.name.clone())
        .collect();
    let restart = dependents_closure(&new.units, &changed);
    report.restarted = new
        .units
        .iter()
        .filter(|u| restart.contains(&u.name) && !report.added.contains(&u.name))
        .map(|u| u.name.clone())
        .collect();
    Diff {
        report,
        changed,
        restart,
    }
}

/// Removed units stop first, dependents before dependencies (old graph), then their
/// tasks end.
async fn remove_units(handle: &Handle, old: &Plan, removed: &[String]) {
    stop_in_order(handle, old, removed).await;
    for name in removed {
        let tx = handle
            .shared
            .units
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        if let Some(tx) = tx {
            let (ack, wait) = oneshot::channel();
            if tx.send(Cmd::Remove(ack)).is_ok() {
                let _ = wait.await;
            }
        }
    }
}

/// Puts the new plan and status table (plan order) in force; units about to restart
/// show `stopping` at once so their dependents do not start again against the old process.
fn install_plan(handle: &Handle, new: &Arc<Plan>, restarted: &[String]) {
    let shared = &handle.shared;
    let mut st = shared.statuses.lock().unwrap_or_else(|e| e.into_inner());
    shared.plan.send_replace(new.clone());
    let mut next: Vec<UnitStatus> = Vec::new();
    for u in &new.units {
        let mut s = st
            .iter()
            .find(|s| s.name == u.name)
            .cloned()
            .unwrap_or_else(|| UnitStatus::new(&u.name, u.kind));
        s.kind = u.kind;
        if restarted.contains(&u.name)
            && matches!(
                s.state,
                UnitState::Running | UnitState::Healthy | UnitState::Starting
            )
        {
            s.state = UnitState::Stopping;
            s.reason = Some("reload".into());
            s.since = super::state::now();
        }
        next.push(s);
    }
    *st = next;
    shared.publish(&st);
}

/// Hands each restarted unit its new definition (or the news that a dependency changed),
/// dependents first, and waits until all of them stopped their old process.
async fn reload_units(handle: &Handle, new: &Plan, diff: &Diff) {
    let mut acks = Vec::new();
    for u in new.units.iter().rev() {
        if !diff.report.restarted.contains(&u.name) {
            continue;
        }
        let (def, reason) = if diff.changed.contains(&u.name) {
            (
                Some(Arc::new(u.clone())),
                "reload: definition changed".to_string(),
            )
        } else {
            let deps: Vec<&str> = u
                .depends_on
                .iter()
                .filter(|d| diff.restart.contains(&d.unit))
                .map(|d| d.unit.as_str())
                .collect();
            (None, format!("reload: {} changed", deps.join(", ")))
        };
        if let Some(tx) = handle.sender(&u.name) {
            let (done, wait) = oneshot::channel();
            if tx
                .send(Cmd::Reload {
                    unit: def,
                    reason,
                    done,
                })
                .is_ok()
            {
                acks.push(wait);
            }
        }
    }
    for a in acks {
        let _ = a.await;
    }
}
