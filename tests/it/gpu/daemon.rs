//! The GPU watch inside the real daemon, NVML being the fake libnvidia-ml.so.1 on
//! LD_LIBRARY_PATH (loaded by the real nvml-wrapper): `gpu`, `status`, `/metrics` on
//! [metrics].listen and on the control socket, attribution of a unit's real child by pid,
//! min_free hold then start, max_used restart after grace, and the missing-library path.

use crate::support::daemon::TestDaemon;
use crate::support::gpu::{
    children_of, gpu_json, gpu_line, proc_line, start_daemon, status_json, wait_for, FakeNvml, GIB,
};
use crate::support::http::http_get;

/// The pid of the unit's process and of its first child, once the unit runs.
fn unit_and_child(d: &TestDaemon, unit: &str) -> (u32, u32) {
    wait_for(20, || {
        let u = d.unit_status(unit);
        let pid = u["pid"].as_u64()? as u32;
        (u["state"] == "running" || u["state"] == "healthy")
            .then(|| children_of(pid).first().map(|c| (pid, *c)))
            .flatten()
    })
    .unwrap_or_else(|| panic!("{unit} never ran with a child: {}", status_json(d)))
}

#[test]
fn daemon_shows_fake_gpus_and_attributes_a_units_child_by_pid() {
    let fake = FakeNvml::build();
    fake.write(&gpu_line(
        "GPU-dddd-0001",
        80 * GIB,
        20 * GIB,
        "NVIDIA H100 80GB HBM3",
    ));
    let d = start_daemon(
        r#"
[gpu]
interval = "200ms"

[metrics]
listen = "127.0.0.1:22101"

[services.model]
command = ["sh", "-c", "sleep 600 & wait"]

[services.other]
command = ["sleep", "600"]

# Its worker double-forks away: reparented to the daemon (a subreaper), not to the unit.
[services.forker]
command = ["sh", "-c", "(sleep 601 &); exec sleep 600"]
"#,
        Some(&fake),
    );
    let (_, worker) = unit_and_child(&d, "model");
    // Units start in parallel: under load `other` and `forker` may still be starting.
    let running = |name| d.wait_state(name, "running", std::time::Duration::from_secs(15));
    let other = running("other")["pid"].as_u64().unwrap() as u32;
    let forker = running("forker")["pid"].as_u64().unwrap() as u32;
    let orphan = wait_for(10, || {
        children_of(d.pid()).into_iter().find(|&c| {
            std::fs::read_to_string(format!("/proc/{c}/cmdline"))
                .map(|c| c.contains("601"))
                .unwrap_or(false)
        })
    })
    .expect("the double-forked sleep is reparented to the daemon");
    let stray = std::process::id();
    fake.write(&format!(
        "{}{}{}{}{}",
        gpu_line("GPU-dddd-0001", 80 * GIB, 20 * GIB, "NVIDIA H100 80GB HBM3"),
        proc_line(0, worker, 12 * GIB),
        proc_line(0, other, GIB),
        proc_line(0, orphan, 2 * GIB),
        proc_line(0, stray, GIB / 2)
    ));
    let g = wait_for(10, || {
        let g = gpu_json(&d);
        (g["units"].as_array()?.len() == 3).then_some(g)
    })
    .unwrap_or_else(|| panic!("no attribution: {}", gpu_json(&d)));
    assert_eq!(g["availability"]["state"], "available");
    assert_eq!(g["gpus"][0]["name"], "NVIDIA H100 80GB HBM3");
    assert_eq!(g["gpus"][0]["uuid"], "GPU-dddd-0001");
    assert_eq!(g["gpus"][0]["memory_used"], 20 * GIB);
    let model = g["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["unit"] == "model")
        .unwrap();
    assert_eq!(model["used_bytes"], 12 * GIB);
    assert_eq!(model["pids"][0], worker);
    let f = g["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["unit"] == "forker")
        .unwrap();
    assert_eq!(f["used_bytes"], 2 * GIB);
    assert_eq!(f["pids"][0], orphan);
    assert_ne!(orphan, forker);

    let table = d.cli_ok(&["gpu"]);
    assert!(
        table.contains("NVIDIA H100 80GB HBM3  20 GiB (25%)  80 GiB  60 GiB"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("model ") && l.contains("12 GiB")),
        "{table}"
    );
    assert!(
        table.contains(&format!("GPU 0 pid {stray} 512 MiB")),
        "{table}"
    );
    let status = d.cli_ok(&["status"]);
    assert!(
        status.contains("GPU memory by unit: forker 2 GiB, model 12 GiB, other 1 GiB"),
        "{status}"
    );

    let m = http_get("http://127.0.0.1:22101/metrics");
    for want in [
        "DCGM_FI_DEV_FB_USED{gpu=\"0\",UUID=\"GPU-dddd-0001\",device=\"nvidia0\",modelName=\"NVIDIA H100 80GB HBM3\"} 20480",
        "prometheus_stack_unit_gpu_memory_used_bytes{unit=\"model\",gpu=\"0\",UUID=\"GPU-dddd-0001\"} 12884901888",
        "prometheus_stack_unit_gpu_memory_used_bytes{unit=\"other\",gpu=\"0\",UUID=\"GPU-dddd-0001\"} 1073741824",
        "prometheus_stack_unit_state{unit=\"model\",state=\"running\"} 1",
        "prometheus_stack_unit_state{unit=\"model\",state=\"failed\"} 0",
        "prometheus_stack_unit_restarts_total{unit=\"model\"} 0",
        "prometheus_stack_gpu_monitoring_available 1",
    ] {
        assert!(m.lines().any(|l| l == want), "missing `{want}` in:\n{m}");
    }
    assert!(
        m.contains("prometheus_stack_unit_uptime_seconds{unit=\"model\"} "),
        "{m}"
    );
    let via_socket = d.control_get("/v1/metrics");
    assert!(
        via_socket.contains("prometheus_stack_unit_gpu_memory_used_bytes{unit=\"model\""),
        "{via_socket}"
    );
    assert!(via_socket.ends_with("# EOF\n"));
}

#[test]
fn min_free_holds_a_unit_pending_until_memory_frees_and_fails_after_wait_timeout() {
    let fake = FakeNvml::build();
    let free = (3.1 * GIB as f64) as u64;
    fake.write(&gpu_line(
        "GPU-dddd-0001",
        24 * GIB,
        24 * GIB - free,
        "Fake L4",
    ));
    let d = start_daemon(
        r#"
[gpu]
interval = "200ms"

[services.model]
command = ["sleep", "600"]
gpu = { min_free = "8GiB", wait_timeout = "5m" }

[services.huge]
command = ["sleep", "600"]
gpu = { min_free = "100GiB", wait_timeout = "2s" }

[services.plain]
command = ["sleep", "600"]
"#,
        Some(&fake),
    );
    let want = "waiting for GPU memory: need 8 GiB, free 3.1 GiB on GPU 0";
    wait_for(10, || {
        (d.unit_status("model")["reason"] == want).then_some(())
    })
    .unwrap_or_else(|| panic!("no wait reason: {}", status_json(&d)));
    assert_eq!(d.unit_status("model")["state"], "pending");
    wait_for(10, || {
        (d.unit_status("plain")["state"] == "running").then_some(())
    })
    .expect("a unit without a GPU policy starts at once");
    let status = d.cli_ok(&["status"]);
    assert!(status.contains(want), "{status}");

    let failed = wait_for(15, || {
        let u = d.unit_status("huge");
        (u["state"] == "failed").then_some(u)
    })
    .unwrap_or_else(|| panic!("huge never failed: {}", status_json(&d)));
    let reason = failed["reason"].as_str().unwrap();
    assert!(
        reason.contains("need 100 GiB") && reason.contains("after 2s (gpu.wait_timeout)"),
        "{reason}"
    );
    assert_eq!(
        d.unit_status("model")["state"],
        "pending",
        "still waiting within its 5m"
    );

    fake.write(&gpu_line("GPU-dddd-0001", 24 * GIB, 14 * GIB, "Fake L4"));
    wait_for(10, || {
        (d.unit_status("model")["state"] == "running").then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "model did not start once 10 GiB were free: {}",
            status_json(&d)
        )
    });
}

#[test]
fn max_used_restarts_a_unit_after_grace_once_and_counts_it() {
    let fake = FakeNvml::build();
    fake.write(&gpu_line("GPU-dddd-0001", 80 * GIB, 20 * GIB, "Fake"));
    let d = start_daemon(
        r#"
[gpu]
interval = "200ms"

[services.model]
command = ["sh", "-c", "sleep 600 & wait"]
gpu = { max_used = "10GiB", grace = "1s" }
"#,
        Some(&fake),
    );
    let (first_pid, worker) = unit_and_child(&d, "model");
    fake.write(&format!(
        "{}{}",
        gpu_line("GPU-dddd-0001", 80 * GIB, 31 * GIB, "Fake"),
        proc_line(0, worker, 11 * GIB)
    ));
    let over_at = std::time::Instant::now();
    let restarted = wait_for(15, || {
        let u = d.unit_status("model");
        (u["restarts"].as_u64()? >= 1 && u["pid"].as_u64()? as u32 != first_pid).then_some(u)
    })
    .unwrap_or_else(|| panic!("no restart: {}\n{}", status_json(&d), d.log_text()));
    assert!(
        over_at.elapsed() >= std::time::Duration::from_secs(1),
        "restarted before grace"
    );
    let log = d.log_text();
    assert!(
        log.contains("unit model: restarting: GPU memory 11 GiB above gpu.max_used 10 GiB for 1s"),
        "{log}"
    );
    // The leaking pid is gone with the old process: no second restart.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(d.unit_status("model")["restarts"], restarted["restarts"]);
    let m = d.control_get("/v1/metrics");
    assert!(
        m.lines()
            .any(|l| l == "prometheus_stack_unit_gpu_policy_restarts_total{unit=\"model\"} 1"),
        "{m}"
    );
    assert!(
        m.lines().any(
            |l| l == "prometheus_stack_unit_gpu_memory_limit_bytes{unit=\"model\"} 10737418240"
        ),
        "{m}"
    );
    let table = d.cli_ok(&["gpu"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("model ") && l.trim_end().ends_with(" 1")),
        "{table}"
    );
}

#[test]
fn without_the_library_one_line_is_logged_and_everything_else_works() {
    if std::path::Path::new("/dev/nvidiactl").exists() {
        eprintln!("a real NVIDIA driver is present: the missing-library path cannot be shown here");
        return;
    }
    let d = start_daemon(
        r#"
[gpu]
enabled = "on"
interval = "200ms"

[metrics]
listen = "127.0.0.1:22102"

[services.model]
command = ["sleep", "600"]
gpu = { min_free = "8GiB", max_used = "1GiB", grace = "1s" }
"#,
        None,
    );
    wait_for(10, || {
        (d.unit_status("model")["state"] == "running").then_some(())
    })
    .unwrap_or_else(|| panic!("model not started without NVML: {}", status_json(&d)));
    let g = d.cli_ok(&["gpu"]);
    assert!(
        g.starts_with("GPU monitoring unavailable: libnvidia-ml.so")
            && g.contains("cannot open shared object file"),
        "{g}"
    );
    let status = d.cli_ok(&["status"]);
    assert!(status.contains("GPU monitoring unavailable: "), "{status}");
    let m = http_get("http://127.0.0.1:22102/metrics");
    assert!(
        m.contains("prometheus_stack_unit_state{unit=\"model\",state=\"running\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("prometheus_stack_gpu_monitoring_available 0"),
        "{m}"
    );
    assert!(!m.contains("DCGM_") && !m.contains("unit_gpu"), "{m}");
    std::thread::sleep(std::time::Duration::from_millis(600));
    let log = d.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("GPU")).collect();
    assert_eq!(lines.len(), 1, "exactly one GPU line expected:\n{log}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("GPU monitoring unavailable: "),
        "{log}"
    );
}

#[test]
fn gpu_without_a_daemon_reads_the_cards_directly() {
    let fake = FakeNvml::build();
    fake.write(&gpu_line(
        "GPU-eeee-0001",
        48 * GIB,
        12 * GIB,
        "NVIDIA L40S",
    ));
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_prometheus-stack"))
        .arg("--socket")
        .arg(dir.path().join("none.sock"))
        .arg("gpu")
        .env("LD_LIBRARY_PATH", fake.dir.path())
        .env("FAKE_NVML_SCRIPT", &fake.script)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("no per-unit figures without the daemon"),
        "{stderr}"
    );
    assert!(
        stdout.contains("NVIDIA L40S  12 GiB (25%)  48 GiB  36 GiB")
            && stdout.contains("GPU-eeee-0001"),
        "{stdout}"
    );
}
