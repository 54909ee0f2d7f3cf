//! `secrets rotate NAME`: a new value, applied where it is used (the secret's rotate task,
//! e.g. ALTER ROLE), then stored, then every consumer restarted.
//!
//! The new value is staged as `NAME.next` in the store while the rotate task runs, so the
//! task can read both the old and the new value; a failed task leaves the old one in place.

use super::{generate, SecretError, SecretStore};
use crate::plan::{Plan, TaskContext, UnitKind};
use std::future::Future;
use std::sync::Arc;

/// Errors of a rotation; each names the secret.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("no secret {name:?} in the plan; known: {known}")]
    Unknown { name: String, known: String },
    #[error("secret {name:?} cannot be rotated: {reason}")]
    NotRotatable { name: String, reason: &'static str },
    #[error("secret {name:?} comes from systemd's $CREDENTIALS_DIRECTORY: change it there (it always wins over the store)")]
    FromCredentials { name: String },
    #[error("secret {name:?}: owner {user:?} does not exist")]
    NoOwner { name: String, user: String },
    #[error(transparent)]
    Store(#[from] SecretError),
    #[error("secret {name:?} was not changed: applying the new value failed: {reason}")]
    Apply { name: String, reason: String },
    #[error(
        "secret {name:?} was changed, but restarting {unit} failed: {reason} (restart it by hand)"
    )]
    Restart {
        name: String,
        unit: String,
        reason: String,
    },
    #[error("secret {name:?} was not changed: generating the new value failed: {source}")]
    Generator {
        name: String,
        #[source]
        source: tokio::task::JoinError,
    },
}

/// What a rotation did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rotation {
    pub name: String,
    /// Consumers restarted, in plan order.
    pub restarted: Vec<String>,
}

/// Why `name` must not be rotated, for secrets whose old value is needed to read data
/// encrypted with it (a new value would make that data unreadable).
pub fn not_rotatable(name: &str) -> Option<&'static str> {
    match name {
        crate::stack::lobechat::KEY_VAULTS_SECRET => Some(
            "LobeChat's KEY_VAULTS_SECRET encrypts the API keys users stored in its database; \
             a new value would make every stored key unreadable (LobeChat cannot re-encrypt them)",
        ),
        _ => None,
    }
}

/// Store name of the value being rotated in (read by rotate tasks).
pub fn pending_name(name: &str) -> String {
    format!("{name}.next")
}

/// Longrun units that use the secret: declared consumers plus every unit whose env embeds it.
pub fn consumers(plan: &Plan, name: &str) -> Vec<String> {
    let declared = plan
        .secrets
        .get(name)
        .map(|s| s.consumers.clone())
        .unwrap_or_default();
    plan.units
        .iter()
        .filter(|u| u.kind == UnitKind::Longrun)
        .filter(|u| {
            declared.contains(&u.name)
                || u.env.values().any(|v| v.secret_names().any(|n| n == name))
        })
        .map(|u| u.name.clone())
        .collect()
}

fn owner_ids(name: &str, owner: Option<&str>) -> Result<Option<(u32, u32)>, RotateError> {
    let Some(user) = owner else { return Ok(None) };
    match nix::unistd::User::from_name(user) {
        Ok(Some(u)) => Ok(Some((u.uid.as_raw(), u.gid.as_raw()))),
        _ => Err(RotateError::NoOwner {
            name: name.into(),
            user: user.into(),
        }),
    }
}

/// Rotates `name`: generate, apply (rotate task), store, restart consumers through `restart`.
pub async fn rotate<R, Fut>(
    plan: Arc<Plan>,
    store: &SecretStore,
    name: &str,
    log: Arc<dyn Fn(String) + Send + Sync>,
    restart: R,
) -> Result<Rotation, RotateError>
where
    R: Fn(String) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    // One rotation at a time: two would race on the staged `NAME.next` value.
    static ROTATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = ROTATING.lock().await;
    let Some(spec) = plan.secrets.get(name) else {
        return Err(RotateError::Unknown {
            name: name.into(),
            known: plan.secrets.keys().cloned().collect::<Vec<_>>().join(", "),
        });
    };
    if let Some(reason) = not_rotatable(name) {
        return Err(RotateError::NotRotatable {
            name: name.into(),
            reason,
        });
    }
    if store.from_credentials(name) {
        return Err(RotateError::FromCredentials { name: name.into() });
    }
    let owner = owner_ids(name, spec.owner.as_deref())?;
    // RSA key generation takes up to seconds of CPU: off the async workers.
    let (n, kind) = (name.to_string(), spec.kind.clone());
    let value = tokio::task::spawn_blocking(move || generate(&n, &kind))
        .await
        .map_err(|source| RotateError::Generator {
            name: name.into(),
            source,
        })??;
    let pending = pending_name(name);
    store.write(&pending, &value, owner)?;
    if let Some(task) = &spec.rotate {
        let ctx = TaskContext {
            unit: format!("secrets rotate {name}"),
            plan: plan.clone(),
            secrets: store.clone(),
            log: log.clone(),
        };
        if let Err(e) = task.run(ctx).await {
            let _ = std::fs::remove_file(store.path(&pending));
            return Err(RotateError::Apply {
                name: name.into(),
                reason: e.to_string(),
            });
        }
    }
    store.write(name, &value, owner)?;
    let _ = std::fs::remove_file(store.path(&pending));
    log(format!("secret {name} rotated"));
    let mut restarted = Vec::new();
    for unit in consumers(&plan, name) {
        restart(unit.clone())
            .await
            .map_err(|reason| RotateError::Restart {
                name: name.into(),
                unit: unit.clone(),
                reason,
            })?;
        restarted.push(unit);
    }
    Ok(Rotation {
        name: name.into(),
        restarted,
    })
}
