//! The warden owns every unit task in one `JoinSet` and joins them: a unit task that
//! panics (a bug) shows as `failed` with the panic message as its reason, never as a row
//! frozen in its last state, and the unit gets a fresh machine so it can be started by
//! hand again.

use super::unit::{transition::Rest, Step};
use super::{spawn_machine, Shared, UnitState};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::{Id, JoinError, JoinSet};

/// A unit's machine, handed to the warden to run.
pub(crate) struct UnitTask {
    pub(crate) name: String,
    pub(crate) task: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// Runs unit tasks as they come and joins them until the supervisor is gone.
pub(crate) async fn run(shared: Arc<Shared>, mut tasks: mpsc::UnboundedReceiver<UnitTask>) {
    let mut set = JoinSet::new();
    let mut names: HashMap<Id, String> = HashMap::new();
    loop {
        tokio::select! {
            t = tasks.recv() => match t {
                Some(t) => {
                    let id = set.spawn(t.task).id();
                    names.insert(id, t.name);
                }
                None => break,
            },
            Some(done) = set.join_next_with_id() => match done {
                Ok((id, ())) => {
                    names.remove(&id);
                }
                Err(e) => {
                    if let Some(name) = names.remove(&e.id()) {
                        ended_abnormally(&shared, &name, e);
                    }
                }
            },
        }
    }
    // The supervisor is gone: let the tasks end on their own (their channels close).
    set.detach_all();
}

/// Shows a unit whose task panicked as failed and gives it a fresh machine, idle.
fn ended_abnormally(shared: &Arc<Shared>, name: &str, e: JoinError) {
    let why = if e.is_panic() {
        format!(
            "internal error: the unit's task panicked: {}",
            panic_text(e)
        )
    } else {
        "internal error: the unit's task was cancelled".to_string()
    };
    tracing::error!("unit {name}: {why}");
    shared.log_sink(name).line(format!("-- failed: {why}"));
    shared.update(name, |s| {
        s.state = UnitState::Failed;
        s.pid = None;
        s.health = None;
        s.reason = Some(format!("{why}; start it by hand"));
    });
    if let Some(u) = shared.plan().unit(name) {
        spawn_machine(shared, Arc::new(u.clone()), Step::Idle(Rest::Failed));
    }
}

fn panic_text(e: JoinError) -> String {
    panic_message(&*e.into_panic())
}

/// The message a panic carried, for status and errors.
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}
