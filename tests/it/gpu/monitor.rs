//! The GPU monitor against a fake libnvidia-ml.so.1 loaded by the real nvml-wrapper:
//! readings, attribution of real child processes, min_free/max_used policies, metrics,
//! and the unavailable paths.

use crate::support::gpu::{gpu_line, proc_line, FakeNvml, GIB, MIB};
use prometheus_stack::config::model::GpuEnabled;
use prometheus_stack::gpu::{
    Availability, Gate, GpuMonitor, GpuSnapshot, GpuSource, NvmlSource, Restarter, UnitProc,
};
use prometheus_stack::metrics::{GpuMetrics, Metrics};
use prometheus_stack::plan::{blank_unit, BoxFuture, GpuPlan, GpuPolicy, Unit};

fn unit_named(name: &str) -> Unit {
    blank_unit(name, &format!("services.{name}"), "generic")
}
use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Recorded(Mutex<Vec<(String, String)>>);

impl Restarter for Recorded {
    fn restart(&self, unit: &str, reason: &str) -> BoxFuture<Result<(), String>> {
        self.0.lock().unwrap().push((unit.into(), reason.into()));
        Box::pin(async { Ok(()) })
    }
}

fn plan(interval_ms: u64) -> GpuPlan {
    GpuPlan {
        enabled: GpuEnabled::Auto,
        interval: Duration::from_millis(interval_ms),
        alert_used_percent: 90,
    }
}

fn start(
    fake: &FakeNvml,
    policies: HashMap<String, GpuPolicy>,
    units: Vec<UnitProc>,
    restarter: Arc<Recorded>,
) -> GpuMonitor {
    let lib = fake.lib.clone();
    let m = GpuMonitor::start_with(
        &plan(100),
        policies,
        Box::new(move || NvmlSource::open_path(&lib).map(|s| Box::new(s) as Box<dyn GpuSource>)),
    );
    m.connect(Arc::new(units), restarter);
    m
}

async fn wait_snap(
    m: &GpuMonitor,
    what: &str,
    mut ok: impl FnMut(&GpuSnapshot) -> bool,
) -> GpuSnapshot {
    let mut rx = m.subscribe();
    let fut = async {
        loop {
            {
                let s = rx.borrow_and_update();
                if ok(&s) {
                    return s.clone();
                }
            }
            rx.changed().await.expect("monitor stopped");
        }
    };
    match tokio::time::timeout(Duration::from_secs(10), fut).await {
        Ok(s) => s,
        Err(_) => panic!("timed out waiting for {what}; last: {:#?}", m.snapshot()),
    }
}

/// A shell that runs `sleep` as its child: the unit's main pid is the shell, the GPU
/// process is the grandchild-level `sleep`, as with a model server that forks workers.
fn spawn_tree() -> (Child, u32) {
    let mut sh = Command::new("sh")
        .args(["-c", "sleep 60 & echo $!; wait"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(sh.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (sh, line.trim().parse().unwrap())
}

fn kill_tree(mut sh: Child, child: u32) {
    let _ = Command::new("kill").arg(child.to_string()).status();
    let _ = sh.kill();
    let _ = sh.wait();
}

fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    (head.to_string(), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_card_values_reach_snapshot_and_metrics_endpoint() {
    let fake = FakeNvml::build();
    fake.write(&format!(
        "{}{}",
        gpu_line("GPU-aaaa-0001", 80 * GIB, 20 * GIB, "NVIDIA H100 80GB HBM3"),
        gpu_line("GPU-bbbb-0002", 40 * GIB, 39 * GIB, "NVIDIA A100-SXM4-40GB")
    ));
    let m = start(&fake, HashMap::new(), vec![], Arc::default());
    let s = wait_snap(&m, "two cards", |s| s.gpus.len() == 2).await;
    let g = &s.gpus[0];
    assert_eq!(g.index, 0);
    assert_eq!(g.name, "NVIDIA H100 80GB HBM3");
    assert_eq!(g.uuid, "GPU-aaaa-0001");
    assert_eq!(g.memory_total, 80 * GIB);
    assert_eq!(g.memory_used, 20 * GIB);
    assert_eq!(g.memory_free, 60 * GIB);
    assert_eq!(g.memory_reserved, 256 * MIB);
    assert_eq!(g.utilization_gpu, Some(37));
    assert_eq!(g.utilization_memory, Some(12));
    assert_eq!(g.temperature_c, Some(51));
    assert_eq!(g.power_mw, Some(123456));
    assert_eq!(s.gpus[1].index, 1);
    // 39 of 40 GiB is above alert_used_percent = 90.
    assert!(
        s.warnings
            .iter()
            .any(|w| w.starts_with("GPU 1 (NVIDIA A100-SXM4-40GB): memory 98% used")),
        "{:?}",
        s.warnings
    );

    let metrics = Metrics::new();
    metrics.add(Arc::new(GpuMetrics::new(m.subscribe(), 90)));
    let addr = prometheus_stack::metrics::serve(metrics, "127.0.0.1:0")
        .await
        .unwrap();
    let (head, body) = tokio::task::spawn_blocking(move || http_get(addr, "/metrics"))
        .await
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("application/openmetrics-text"), "{head}");
    let want = [
        "DCGM_FI_DEV_FB_USED{gpu=\"0\",UUID=\"GPU-aaaa-0001\",device=\"nvidia0\",modelName=\"NVIDIA H100 80GB HBM3\"} 20480",
        "DCGM_FI_DEV_FB_FREE{gpu=\"0\",UUID=\"GPU-aaaa-0001\",device=\"nvidia0\",modelName=\"NVIDIA H100 80GB HBM3\"} 61440",
        "DCGM_FI_DEV_FB_USED{gpu=\"1\",UUID=\"GPU-bbbb-0002\",device=\"nvidia1\",modelName=\"NVIDIA A100-SXM4-40GB\"} 39936",
        "DCGM_FI_DEV_FB_RESERVED{gpu=\"0\",UUID=\"GPU-aaaa-0001\",device=\"nvidia0\",modelName=\"NVIDIA H100 80GB HBM3\"} 256",
        "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",UUID=\"GPU-aaaa-0001\",device=\"nvidia0\",modelName=\"NVIDIA H100 80GB HBM3\"} 37",
        "DCGM_FI_DEV_GPU_TEMP{gpu=\"0\",UUID=\"GPU-aaaa-0001\",device=\"nvidia0\",modelName=\"NVIDIA H100 80GB HBM3\"} 51",
        "DCGM_FI_DEV_POWER_USAGE{gpu=\"0\",UUID=\"GPU-aaaa-0001\",device=\"nvidia0\",modelName=\"NVIDIA H100 80GB HBM3\"} 123.456",
        "prometheus_stack_gpu_memory_alert{gpu=\"1\",UUID=\"GPU-bbbb-0002\"} 1",
        "prometheus_stack_gpu_memory_alert{gpu=\"0\",UUID=\"GPU-aaaa-0001\"} 0",
        "prometheus_stack_gpu_monitoring_available 1",
        "# TYPE DCGM_FI_DEV_FB_USED gauge",
    ];
    for w in want {
        assert!(body.lines().any(|l| l == w), "missing `{w}` in:\n{body}");
    }
    assert!(body.ends_with("# EOF\n"), "{body}");
    let (head, _) = tokio::task::spawn_blocking(move || http_get(addr, "/nope"))
        .await
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_processes_are_attributed_to_the_unit_owning_their_process_tree() {
    let fake = FakeNvml::build();
    let (sh_a, pid_a) = spawn_tree();
    let (sh_b, pid_b) = spawn_tree();
    // One process no unit owns: this test itself.
    let stray = std::process::id();
    fake.write(&format!(
        "{}{}{}{}{}",
        gpu_line("GPU-aaaa-0001", 80 * GIB, 30 * GIB, "Fake H100"),
        gpu_line("GPU-bbbb-0002", 80 * GIB, 2 * GIB, "Fake H100"),
        proc_line(0, pid_a, 12 * GIB),
        proc_line(1, pid_a, GIB),
        proc_line(0, pid_b, 3 * GIB) + &proc_line(0, stray, 512 * MIB),
    ));
    let units = vec![
        UnitProc {
            name: "ollama".into(),
            pid: Some(sh_a.id()),
            container: None,
        },
        UnitProc {
            name: "vllm".into(),
            pid: Some(sh_b.id()),
            container: None,
        },
        UnitProc {
            name: "postgres".into(),
            pid: None,
            container: None,
        },
    ];
    let m = start(&fake, HashMap::new(), units, Arc::default());
    let s = wait_snap(&m, "attributed units", |s| s.units.len() == 2).await;
    let ollama = s.unit("ollama").expect("ollama has GPU memory");
    assert_eq!(ollama.used_bytes, 13 * GIB);
    assert_eq!(ollama.per_gpu, vec![(0, 12 * GIB), (1, GIB)]);
    assert_eq!(ollama.pids, vec![pid_a]);
    assert_eq!(s.unit_used("vllm"), Some(3 * GIB));
    assert_eq!(s.unit_used("postgres"), None);
    let strays: Vec<_> = s.gpus[0]
        .processes
        .iter()
        .filter(|p| p.unit.is_none())
        .map(|p| p.pid)
        .collect();
    assert_eq!(strays, vec![stray]);

    let metrics = Metrics::new();
    metrics.add(Arc::new(GpuMetrics::new(m.subscribe(), 90)));
    let text = metrics.render();
    for w in [
        "prometheus_stack_unit_gpu_memory_used_bytes{unit=\"ollama\",gpu=\"0\",UUID=\"GPU-aaaa-0001\"} 12884901888".to_string(),
        "prometheus_stack_unit_gpu_memory_used_bytes{unit=\"ollama\",gpu=\"1\",UUID=\"GPU-bbbb-0002\"} 1073741824".to_string(),
        format!("prometheus_stack_gpu_process_memory_used_bytes{{gpu=\"0\",UUID=\"GPU-aaaa-0001\",pid=\"{stray}\",unit=\"\"}} 536870912"),
    ] {
        assert!(text.lines().any(|l| l == w), "missing `{w}` in:\n{text}");
    }
    kill_tree(sh_a, pid_a);
    kill_tree(sh_b, pid_b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_free_holds_the_unit_until_memory_is_free_then_opens() {
    let fake = FakeNvml::build();
    let free = (3.1 * GIB as f64) as u64;
    fake.write(&gpu_line(
        "GPU-aaaa-0001",
        80 * GIB,
        80 * GIB - free,
        "Fake",
    ));
    let pol = GpuPolicy {
        min_free: Some(8 * GIB),
        max_used: None,
        grace: Duration::from_secs(120),
        wait_timeout: Duration::from_secs(600),
    };
    let mut unit = unit_named("ollama");
    unit.gpu = Some(pol.clone());
    let m = start(
        &fake,
        HashMap::from([("ollama".to_string(), pol)]),
        vec![],
        Arc::default(),
    );
    let gate = m.gpu_gate();
    wait_snap(&m, "first reading", |s| s.is_available()).await;
    assert_eq!(
        gate.check(&unit),
        Gate::Wait("waiting for GPU memory: need 8 GiB, free 3.1 GiB on GPU 0".into())
    );
    // A unit without a policy is never held.
    assert_eq!(gate.check(&unit_named("postgres")), Gate::Open);
    fake.write(&gpu_line("GPU-aaaa-0001", 80 * GIB, 70 * GIB, "Fake"));
    wait_snap(&m, "10 GiB free", |s| {
        s.gpus.first().map(|g| g.memory_free) == Some(10 * GIB)
    })
    .await;
    assert_eq!(gate.check(&unit), Gate::Open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_free_fails_the_unit_after_wait_timeout() {
    let fake = FakeNvml::build();
    fake.write(&gpu_line("GPU-aaaa-0001", 16 * GIB, 15 * GIB, "Fake"));
    let mut unit = unit_named("ollama");
    unit.gpu = Some(GpuPolicy {
        min_free: Some(8 * GIB),
        max_used: None,
        grace: Duration::from_secs(120),
        wait_timeout: Duration::from_millis(600),
    });
    let m = start(&fake, HashMap::new(), vec![], Arc::default());
    let gate = m.gpu_gate();
    wait_snap(&m, "first reading", |s| s.is_available()).await;
    assert!(matches!(gate.check(&unit), Gate::Wait(_)));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        gate.check(&unit),
        Gate::Fail(
            "waiting for GPU memory: need 8 GiB, free 1 GiB on GPU 0 after 600ms (gpu.wait_timeout)"
                .into()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_used_restarts_the_unit_after_grace_and_counts_it() {
    let fake = FakeNvml::build();
    let (sh, pid) = spawn_tree();
    fake.write(&format!(
        "{}{}",
        gpu_line("GPU-aaaa-0001", 80 * GIB, 70 * GIB, "Fake"),
        proc_line(0, pid, 61 * GIB)
    ));
    let pol = GpuPolicy {
        min_free: None,
        max_used: Some(60 * GIB),
        grace: Duration::from_millis(800),
        wait_timeout: Duration::from_secs(600),
    };
    let rec = Arc::new(Recorded::default());
    let started = std::time::Instant::now();
    let m = start(
        &fake,
        HashMap::from([("ollama".to_string(), pol)]),
        vec![UnitProc {
            name: "ollama".into(),
            pid: Some(sh.id()),
            container: None,
        }],
        rec.clone(),
    );
    let s = wait_snap(&m, "a policy restart", |s| {
        s.unit("ollama").map(|u| u.policy_restarts) == Some(1)
    })
    .await;
    assert!(started.elapsed() >= Duration::from_millis(800));
    assert_eq!(s.unit("ollama").unwrap().max_used, Some(60 * GIB));
    assert_eq!(
        rec.0.lock().unwrap().clone(),
        vec![(
            "ollama".to_string(),
            "GPU memory 61 GiB above gpu.max_used 60 GiB for 800ms".to_string()
        )]
    );
    let metrics = Metrics::new();
    metrics.add(Arc::new(GpuMetrics::new(m.subscribe(), 90)));
    let text = metrics.render();
    assert!(
        text.contains("prometheus_stack_unit_gpu_policy_restarts_total{unit=\"ollama\"} 1"),
        "{text}"
    );
    // Under the limit: no more restarts however long it runs.
    fake.write(&format!(
        "{}{}",
        gpu_line("GPU-aaaa-0001", 80 * GIB, 20 * GIB, "Fake"),
        proc_line(0, pid, 10 * GIB)
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rec.0.lock().unwrap().len(), 1);
    kill_tree(sh, pid);
}

/// Without GPU monitoring a unit's GPU policy (8 GiB free, `max_used`) never holds it, and
/// the metrics say monitoring is unavailable with no DCGM series; returns the metrics text.
fn open_gate_and_no_gpu_series(m: &GpuMonitor, max_used: Option<u64>) -> String {
    let mut unit = unit_named("ollama");
    unit.gpu = Some(GpuPolicy {
        min_free: Some(8 * GIB),
        max_used,
        grace: Duration::from_secs(1),
        wait_timeout: Duration::from_secs(1),
    });
    assert_eq!(m.gpu_gate().check(&unit), Gate::Open);
    let metrics = Metrics::new();
    metrics.add(Arc::new(GpuMetrics::new(m.subscribe(), 90)));
    let text = metrics.render();
    assert!(
        text.contains("prometheus_stack_gpu_monitoring_available 0"),
        "{text}"
    );
    assert!(!text.contains("DCGM_"), "{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_library_gives_one_line_and_no_gpu_series() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("libnvidia-ml.so.1");
    let m = GpuMonitor::start_with(
        &plan(100),
        HashMap::new(),
        Box::new(move || NvmlSource::open_path(&lib).map(|s| Box::new(s) as Box<dyn GpuSource>)),
    );
    m.connect(
        Arc::new(Vec::<UnitProc>::new()),
        Arc::new(Recorded::default()),
    );
    let s = wait_snap(&m, "unavailable", |s| {
        matches!(s.availability, Availability::Unavailable(_))
    })
    .await;
    let line = s.unavailable_line().unwrap();
    assert!(
        line.starts_with("GPU monitoring unavailable: ")
            && line.contains("libnvidia-ml.so.1: cannot open shared object file")
            && line.ends_with("(is the NVIDIA driver installed?)"),
        "{line}"
    );
    let text = open_gate_and_no_gpu_series(&m, Some(GIB));
    assert!(!text.contains("prometheus_stack_unit_gpu"), "{text}");
}

#[test]
fn the_system_library_is_absent_here_and_says_so() {
    // This machine has no NVIDIA driver: the default search must fail with the dlopen text.
    if std::path::Path::new("/dev/nvidiactl").exists() {
        return;
    }
    let err = NvmlSource::open()
        .err()
        .expect("no NVML on a machine without a GPU");
    assert!(err.to_string().contains("libnvidia-ml.so.1"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_not_loaded_and_vanishing_cards_are_reported_not_fatal() {
    let fake = FakeNvml::build();
    fake.write("init_error 9\n");
    let m = start(&fake, HashMap::new(), vec![], Arc::default());
    let s = wait_snap(&m, "unavailable", |s| {
        !matches!(s.availability, Availability::Starting)
    })
    .await;
    assert_eq!(
        s.unavailable_line().as_deref(),
        Some("GPU monitoring unavailable: the NVIDIA kernel driver is not loaded")
    );
    drop(m);

    fake.write(&format!(
        "{}{}",
        gpu_line("GPU-aaaa-0001", 80 * GIB, 20 * GIB, "Fake A"),
        gpu_line("GPU-bbbb-0002", 80 * GIB, 20 * GIB, "Fake B")
    ));
    let m = start(&fake, HashMap::new(), vec![], Arc::default());
    wait_snap(&m, "two cards", |s| s.gpus.len() == 2).await;
    fake.write(&gpu_line("GPU-aaaa-0001", 80 * GIB, 20 * GIB, "Fake A"));
    let s = wait_snap(&m, "one card left", |s| s.gpus.len() == 1).await;
    assert!(s.is_available());
    assert_eq!(
        s.warnings,
        vec!["GPU 1 (Fake B, GPU-bbbb-0002) disappeared: no longer reported by NVML".to_string()]
    );
    // All cards gone: still running, readings unavailable, and back when they return.
    fake.write("");
    let s = wait_snap(&m, "no cards", |s| !s.is_available()).await;
    assert_eq!(
        s.unavailable_line().as_deref(),
        Some("GPU monitoring unavailable: no NVIDIA GPU found")
    );
    fake.write(&gpu_line("GPU-aaaa-0001", 80 * GIB, 20 * GIB, "Fake A"));
    wait_snap(&m, "card back", |s| s.is_available()).await;
}

#[test]
fn nvml_runs_on_its_own_thread_and_a_slow_driver_never_stalls_the_runtime() {
    let fake = FakeNvml::build();
    fake.write(&format!(
        "delay_ms 400\n{}",
        gpu_line("GPU-aaaa-0001", 80 * GIB, 20 * GIB, "Slow")
    ));
    // A single-threaded runtime: any NVML call on it would freeze the ticker below.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let m = start(&fake, HashMap::new(), vec![], Arc::default());
        let mut rx = m.subscribe();
        let mut ticks = 0u32;
        let mut worst = Duration::ZERO;
        let mut last = std::time::Instant::now();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !rx.borrow_and_update().is_available() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(10)) => {
                    ticks += 1;
                    worst = worst.max(last.elapsed());
                    last = std::time::Instant::now();
                }
                _ = rx.changed() => {}
            }
            assert!(std::time::Instant::now() < deadline, "no reading in 30s");
        }
        // init + count + handle + memory … each takes 400 ms: several seconds of NVML.
        assert!(ticks > 100, "runtime ticked only {ticks} times");
        // Any NVML call on the runtime would stall it for at least 400 ms; stay clear of
        // scheduling jitter on a busy CI machine.
        assert!(
            worst < Duration::from_millis(350),
            "runtime stalled {worst:?}"
        );
    });
    let calls = fake.calls();
    assert!(calls.iter().any(|(f, _)| f == "nvmlInit_v2"), "{calls:?}");
    assert!(
        calls.iter().all(|(_, t)| t == "gpu-poller"),
        "NVML called off the poller thread: {calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enabled_off_never_loads_nvml_and_holds_nothing() {
    let fake = FakeNvml::build();
    fake.write(&gpu_line("GPU-aaaa-0001", 80 * GIB, 79 * GIB, "Fake"));
    let mut p = plan(100);
    p.enabled = GpuEnabled::Off;
    let m = GpuMonitor::start_with(
        &p,
        HashMap::new(),
        Box::new(|| panic!("NVML opened although [gpu].enabled = \"off\"")),
    );
    m.connect(
        Arc::new(Vec::<UnitProc>::new()),
        Arc::new(Recorded::default()),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(m.snapshot().availability, Availability::Disabled);
    open_gate_and_no_gpu_series(&m, None);
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}
