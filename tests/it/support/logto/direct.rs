//! A plan's unit as the daemon would spawn it, without the daemon: env resolved from the
//! secrets store into a clean environment. Lets a test add or remove one variable.

use prometheus_stack::plan::{Exec, Plan};
use prometheus_stack::secrets::SecretStore;
use std::process::Command;

/// Generates every generated secret of the plan (what the daemon does at start).
pub fn ensure_secrets(plan: &Plan, store: &SecretStore) {
    for (name, spec) in &plan.secrets {
        if spec.kind != prometheus_stack::plan::SecretKind::Provided {
            store.ensure(name, &spec.kind, None).unwrap();
        }
    }
}

/// The unit's argv and environment as the daemon would spawn them.
pub fn command(plan: &Plan, store: &SecretStore, unit: &str) -> Command {
    let u = plan.unit(unit).unwrap();
    let Exec::Command(argv) = &u.exec else {
        panic!("{unit} is not a command")
    };
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]).env_clear();
    c.env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in &u.env {
        c.env(k, v.resolve(store).unwrap());
    }
    if let Some(w) = &u.workdir {
        c.current_dir(w);
    }
    c
}
