//! Helpers for the object store tests: real S3 servers (moto, s3s-fs) from tests/setup.sh,
//! plans built from TOML text, and a TaskContext for running preset tasks directly.
#![allow(dead_code)]

use prometheus_stack::config::load_str;
use prometheus_stack::plan::{build, BuildOptions, Exec, Plan, TaskContext};
use prometheus_stack::secrets::SecretStore;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A dependency binary, or a failure telling how to install it.
pub fn require(rel: &str) -> PathBuf {
    let p = crate::support::deps().join(rel);
    assert!(
        p.is_file(),
        "{} is missing: run tests/setup.sh (CI installs it)",
        p.display()
    );
    p
}

/// A free loopback port (ephemeral range).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts TCP connections on the port.
pub fn wait_port(port: u16, within: Duration) {
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < within, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes an executable `rustfs` into `dir` that runs the stand-in
/// (tests/common_objects/rustfs_standin.py) with the test venv's python.
pub fn rustfs_standin(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let python = require("venv/bin/python");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common_objects/rustfs_standin.py");
    let bin = dir.join("rustfs");
    std::fs::write(
        &bin,
        format!(
            "#!/bin/sh\nexec {} {} \"$@\"\n",
            python.display(),
            script.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// A stack on example.com (proxy on 127.0.0.1:26443, internal CA) whose data dir is
/// `data`, with `[services.objects]` made of the `objects` lines.
pub fn objects_config(data: &str, objects: &str) -> String {
    format!(
        r#"
[stack]
domain = "example.com"
data_dir = "{data}"

[proxy]
https = "127.0.0.1:26443"
tls = "internal"

[services.objects]
{objects}
"#
    )
}

/// An S3 client on 127.0.0.1:`port` with the store's root key (objects-root-*).
pub fn root_client(
    store: &SecretStore,
    port: u16,
) -> prometheus_stack::stack::objects::s3::S3Client {
    prometheus_stack::stack::objects::s3::S3Client::new(
        &format!("http://127.0.0.1:{port}"),
        prometheus_stack::stack::objects::s3::S3Credentials {
            access_key: store.read("objects-root-user").unwrap(),
            secret_key: store.read("objects-root-password").unwrap(),
            region: "us-east-1".into(),
        },
    )
    .unwrap()
}

/// A child process killed when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub dir: Option<tempfile::TempDir>,
}

impl Server {
    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns moto's S3 server on `port` (does not wait for it).
pub fn spawn_moto(port: u16) -> Server {
    let bin = require("venv/bin/moto_server");
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn moto_server");
    Server {
        child,
        port,
        dir: None,
    }
}

/// moto on a free port, ready.
pub fn moto() -> Server {
    let s = spawn_moto(free_port());
    wait_port(s.port, Duration::from_secs(30));
    s
}

/// s3s-fs (verifies SigV4) on a free port with these keys, ready.
pub fn s3s_fs(access_key: &str, secret_key: &str) -> Server {
    let bin = require("s3s/bin/s3s-fs");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", access_key, "--secret-key", secret_key])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn s3s-fs");
    wait_port(port, Duration::from_secs(30));
    Server {
        child,
        port,
        dir: Some(dir),
    }
}

/// Builds a plan from TOML (host checks off: binaries need not exist).
pub fn plan(toml: &str) -> Plan {
    let (cfg, src) = load_str("test.toml", None, toml.to_string()).expect("parse");
    build(&cfg, &src, BuildOptions { check_host: false }).unwrap_or_else(|e| panic!("{e}"))
}

/// The issues a bad config gives, rendered.
pub fn plan_error(toml: &str) -> String {
    let (cfg, src) = load_str("test.toml", None, toml.to_string()).expect("parse");
    match build(&cfg, &src, BuildOptions { check_host: false }) {
        Ok(_) => panic!("config was accepted"),
        Err(e) => e.to_string(),
    }
}

/// A TaskContext for `unit` of `plan`, with its log lines collected.
pub fn task_ctx(
    plan: &Plan,
    unit: &str,
    data_dir: &Path,
) -> (TaskContext, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l2 = lines.clone();
    let ctx = TaskContext {
        unit: unit.into(),
        plan: Arc::new(plan.clone()),
        secrets: SecretStore::with_credentials(data_dir, None),
        log: Arc::new(move |s| l2.lock().unwrap().push(s)),
    };
    (ctx, lines)
}

/// Runs the Exec::Task of a unit.
pub async fn run_unit_task(ctx: TaskContext) -> Result<(), String> {
    let unit = ctx.plan.unit(&ctx.unit).expect("unit in plan").clone();
    let Exec::Task(t) = &unit.exec else {
        panic!("{} is not a task unit", unit.name)
    };
    t.run(ctx).await.map_err(|e| e.to_string())
}

/// A plan with the TLS proxy (internal CA) on `https_port` and the rustfs preset pointed at
/// a store already listening on `store_port`; the root key is written to the secrets store.
pub fn proxied_store_plan(data: &Path, https_port: u16, store_port: u16) -> Plan {
    plan(&format!(
        r#"
[stack]
domain = "example.com"
data_dir = "{}"
[proxy]
https = "127.0.0.1:{https_port}"
tls = "internal"
[services.objects]
preset = "rustfs"
port = {store_port}
"#,
        data.display()
    ))
}

/// Starts the proxy of `plan` with every unit counted healthy (no supervisor here).
pub async fn start_proxy(plan: &Plan) -> prometheus_stack::proxy::ProxyHandle {
    prometheus_stack::proxy::Proxy::start(
        std::sync::Arc::new(plan.clone()),
        std::sync::Arc::new(prometheus_stack::proxy::AlwaysHealthy),
    )
    .await
    .expect("proxy starts")
}
