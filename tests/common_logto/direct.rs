//! Runs a plan's units one by one in start order, the way the supervisor does, without
//! the daemon: env resolved from the secrets store into a clean environment, oneshots
//! awaited, longruns probed. Used to check preset env against stand-ins directly.

use prometheus_stack::plan::{Exec, Plan, Probe, TaskContext, UnitKind};
use prometheus_stack::secrets::SecretStore;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longrun children, killed on drop.
pub struct Running(pub Vec<(String, Child)>);

impl Drop for Running {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

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

fn http_status(url: &str) -> Option<u16> {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "2",
            url,
        ])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).parse().ok()
}

/// Runs every unit in plan order; panics with the unit's output when one fails.
pub async fn run_all(plan: Plan, store: &SecretStore) -> Running {
    let plan = Arc::new(plan);
    let mut running = Running(Vec::new());
    for u in &plan.units {
        match (&u.exec, u.kind) {
            (Exec::Task(t), _) => {
                let ctx = TaskContext {
                    unit: u.name.clone(),
                    plan: plan.clone(),
                    secrets: store.clone(),
                    log: Arc::new(|l| eprintln!("[task] {l}")),
                };
                (t.run)(ctx)
                    .await
                    .unwrap_or_else(|e| panic!("{} failed: {e}", u.name));
            }
            (Exec::Command(_), UnitKind::Oneshot) => {
                let out = command(&plan, store, &u.name).output().unwrap();
                assert!(
                    out.status.success(),
                    "{} failed: {}{}",
                    u.name,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            (Exec::Command(_), UnitKind::Longrun) => {
                let mut child = command(&plan, store, &u.name)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                let Some(Probe::Http { url, expect }) = u.health.as_ref().map(|h| &h.probe) else {
                    panic!("{} has no HTTP health probe", u.name)
                };
                let deadline = Instant::now() + Duration::from_secs(20);
                loop {
                    if let Ok(Some(st)) = child.try_wait() {
                        let out = child.wait_with_output().unwrap();
                        panic!(
                            "{} exited ({st}): {}{}",
                            u.name,
                            String::from_utf8_lossy(&out.stdout),
                            String::from_utf8_lossy(&out.stderr)
                        );
                    }
                    let code = http_status(url);
                    let healthy = match (code, expect) {
                        (Some(c), Some(e)) => c == *e,
                        (Some(c), None) => (200..400).contains(&c),
                        _ => false,
                    };
                    if healthy {
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "{} never healthy at {url}",
                        u.name
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                running.0.push((u.name.clone(), child));
            }
        }
    }
    running
}
