//! The supervisor as a library, the way other pieces plug into it: start gates, prepare
//! tasks, in-daemon task units, `restart_with_reason`, snapshots and shutdown.

use prometheus_stack::plan::{self, BuildOptions, Exec, Plan, TaskSpec, Unit};
use prometheus_stack::secrets::SecretStore;
use prometheus_stack::supervisor::{Gate, Handle, Snapshot, StartGate, Supervisor, UnitState};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn plan_from(dir: &std::path::Path, units: &str) -> Plan {
    let text = format!(
        "[stack]\nname = \"seams\"\ndata_dir = \"{}/data\"\n\n{units}",
        dir.display()
    );
    let (cfg, src) = prometheus_stack::config::load_str("seams.toml", None, text).unwrap();
    plan::build(&cfg, &src, BuildOptions { check_host: false }).unwrap()
}

fn unit_mut<'a>(p: &'a mut Plan, name: &str) -> &'a mut Unit {
    p.units.iter_mut().find(|u| u.name == name).unwrap()
}

async fn wait_for(h: &Handle, what: &str, f: impl Fn(&Snapshot) -> bool) -> Arc<Snapshot> {
    let mut rx = h.subscribe();
    let r = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let s = rx.borrow_and_update().clone();
            if f(&s) {
                return s;
            }
            rx.changed().await.unwrap();
        }
    })
    .await;
    r.unwrap_or_else(|_| panic!("timed out waiting for {what}: {:#?}", h.snapshot()))
}

fn state(s: &Snapshot, name: &str) -> UnitState {
    s.unit(name).unwrap().state
}

struct GpuGate {
    open: AtomicBool,
}

impl StartGate for GpuGate {
    fn check(&self, unit: &Unit) -> Gate {
        match unit.name.as_str() {
            "model" if !self.open.load(Ordering::SeqCst) => {
                Gate::Wait("waiting for GPU memory: 2 GiB free, need 8 GiB".into())
            }
            "never" => Gate::Fail("no GPU on this machine".into()),
            _ => Gate::Open,
        }
    }
}

// The shared runtime, not #[tokio::test]: units spawned here register with the process's
// child reaper, whose task lives on the first runtime that spawns one (support::rt).
#[test]
fn gates_prepare_tasks_and_policy_restarts() {
    crate::support::rt().block_on(gates_prepare_tasks_and_policy_restarts_body());
}

async fn gates_prepare_tasks_and_policy_restarts_body() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = plan_from(
        dir.path(),
        r#"
[services.model]
command = ["sleep", "1000"]

[services.never]
command = ["sleep", "1000"]

[services.prepared]
command = ["sleep", "1000"]
backoff = { initial = "0s", max = "50ms" }

[services.provision]
kind = "oneshot"
command = ["placeholder"]

[services.app]
command = ["sleep", "1000"]
depends_on = { provision = "completed" }

[services.broken-task]
kind = "oneshot"
command = ["placeholder"]
"#,
    );
    let tries = Arc::new(AtomicU32::new(0));
    let t = tries.clone();
    unit_mut(&mut p, "prepared").prepare = Some(TaskSpec::custom("fails twice", move |_ctx| {
        let n = t.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < 2 {
                Err(format!("not yet ({n})"))
            } else {
                Ok(())
            }
        }
    }));
    unit_mut(&mut p, "provision").exec =
        Exec::Task(TaskSpec::custom("provision", |ctx| async move {
            ctx.log("provisioning done");
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok::<(), String>(())
        }));
    unit_mut(&mut p, "broken-task").exec =
        Exec::Task(TaskSpec::custom("broken", |_ctx| async move {
            Err::<(), String>("bucket policy refused: AccessDenied".into())
        }));
    let gate = Arc::new(GpuGate {
        open: AtomicBool::new(false),
    });
    let h = Supervisor::start(
        Arc::new(p),
        SecretStore::new(&dir.path().join("data")),
        vec![gate.clone() as Arc<dyn StartGate>],
    );

    // A gate's Wait holds the unit pending with its reason; Fail fails it.
    let s = wait_for(&h, "gate reasons", |s| {
        s.unit("model").unwrap().reason.as_deref()
            == Some("waiting for GPU memory: 2 GiB free, need 8 GiB")
            && state(s, "never") == UnitState::Failed
    })
    .await;
    assert_eq!(state(&s, "model"), UnitState::Pending);
    assert_eq!(
        s.unit("never").unwrap().reason.as_deref(),
        Some("no GPU on this machine")
    );
    gate.open.store(true, Ordering::SeqCst);
    wait_for(&h, "model running", |s| {
        state(s, "model") == UnitState::Running
    })
    .await;

    // prepare: two failed attempts count as failures, the third starts the process.
    let s = wait_for(&h, "prepared running", |s| {
        state(s, "prepared") == UnitState::Running
    })
    .await;
    assert_eq!(s.unit("prepared").unwrap().restarts, 2);
    assert_eq!(tries.load(Ordering::SeqCst), 3);

    // An in-daemon task unit completes and releases its dependent; its log line is kept.
    let s = wait_for(&h, "app running", |s| state(s, "app") == UnitState::Running).await;
    assert_eq!(state(&s, "provision"), UnitState::Completed);
    let lines = h.logs("provision", 10).unwrap();
    assert!(
        lines.iter().any(|l| &**l == "provisioning done"),
        "{lines:?}"
    );
    let s = wait_for(&h, "broken-task failed", |s| {
        state(s, "broken-task") == UnitState::Failed
    })
    .await;
    assert_eq!(
        s.unit("broken-task").unwrap().last_exit.as_deref(),
        Some("bucket policy refused: AccessDenied")
    );

    // A policy restart is counted and explained.
    let pid = s.unit("model").unwrap().pid;
    h.restart_with_reason("model", "GPU memory above max_used for 2m")
        .await
        .unwrap();
    let s = wait_for(&h, "model restarted", |s| {
        state(s, "model") == UnitState::Running && s.unit("model").unwrap().pid != pid
    })
    .await;
    assert_eq!(s.unit("model").unwrap().restarts, 1);
    assert!(h
        .logs("model", 5)
        .unwrap()
        .iter()
        .any(|l| l.contains("GPU memory above max_used")));
    assert!(h.start("nope").is_err());

    h.shutdown().await;
    let s = h.snapshot();
    for u in &s.units {
        assert!(
            matches!(
                u.state,
                UnitState::Stopped | UnitState::Completed | UnitState::Failed
            ),
            "{} is {:?}",
            u.name,
            u.state
        );
        assert_eq!(u.pid, None);
    }
    assert!(
        h.start("model").is_err(),
        "commands are refused after shutdown"
    );
}
