//! Attribution of container processes: a real podman container's process (a host pid
//! under conmon, not under the unit's `podman run` client) is credited to its unit.

use crate::support::gpu::{
    busybox_image, children_of, gpu_line, proc_line, wait_for, FakeNvml, GIB,
};
use prometheus_stack::config::model::GpuEnabled;
use prometheus_stack::gpu::{GpuMonitor, GpuSource, NvmlSource, Restarter, UnitProc};
use prometheus_stack::plan::{BoxFuture, GpuPlan};
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

struct NoRestarts;
impl Restarter for NoRestarts {
    fn restart(&self, unit: &str, _: &str) -> BoxFuture<Result<(), String>> {
        panic!("unexpected restart of {unit}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_process_is_attributed_to_its_podman_unit() {
    let image = busybox_image();
    let name = format!("pstest-gpu-{}", std::process::id());
    let _ = Command::new("podman").args(["rm", "-f", &name]).output();
    // Attached like the runtime runs it: the unit's pid is this podman client.
    let mut client = Command::new("podman")
        .args([
            "run",
            "--rm",
            "--name",
            &name,
            image,
            "sh",
            "-c",
            "sleep 60 & wait",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let worker = wait_for(30, || {
        let out = Command::new("podman")
            .args(["inspect", "--format", "{{.State.Pid}}", &name])
            .output()
            .ok()?;
        let init: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
        (init > 0)
            .then(|| children_of(init).first().copied())
            .flatten()
    })
    .expect("container's sleep process appears");
    assert!(
        !children_of(client.id()).contains(&worker),
        "the container process must not be a child of the podman client"
    );

    let fake = FakeNvml::build();
    fake.write(&format!(
        "{}{}",
        gpu_line("GPU-aaaa-0001", 80 * GIB, 30 * GIB, "Fake"),
        proc_line(0, worker, 5 * GIB)
    ));
    let lib = fake.lib.clone();
    let m = GpuMonitor::start_with(
        &GpuPlan {
            enabled: GpuEnabled::On,
            interval: Duration::from_millis(100),
            alert_used_percent: 90,
        },
        HashMap::new(),
        Box::new(move || NvmlSource::open_path(&lib).map(|s| Box::new(s) as Box<dyn GpuSource>)),
    );
    m.connect(
        Arc::new(vec![
            UnitProc {
                name: "native".into(),
                pid: Some(std::process::id()),
                container: None,
            },
            UnitProc {
                name: "model".into(),
                pid: Some(client.id()),
                container: Some(name.clone()),
            },
        ]),
        Arc::new(NoRestarts),
    );
    let mut rx = m.subscribe();
    let got = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Some(u) = rx.borrow_and_update().unit("model") {
                return u.clone();
            }
            rx.changed().await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no attribution: {:#?}", m.snapshot()));
    assert_eq!(got.used_bytes, 5 * GIB);
    assert_eq!(got.pids, vec![worker]);
    assert!(m.snapshot().unit("native").is_none());

    let _ = Command::new("podman")
        .args(["rm", "-f", "-t", "0", &name])
        .output();
    let _ = client.wait();
}
