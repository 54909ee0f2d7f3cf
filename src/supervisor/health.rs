//! Health probes: one attempt each, bounded by the check's timeout.

use crate::plan::{Plan, Probe, Runtime, TaskContext};
use crate::runtime::{LogSink, ProcessChild, ProcessSpec};
use crate::secrets::SecretStore;
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// What a probe may need besides its definition.
pub struct ProbeCtx<'a> {
    pub unit: &'a str,
    pub plan: &'a Arc<Plan>,
    pub secrets: &'a SecretStore,
    pub log: &'a LogSink,
    /// Lines the unit logged since it started (for `log` probes).
    pub lines: &'a mut Option<broadcast::Receiver<Arc<str>>>,
    /// Set once a `log` probe saw its text; it stays healthy afterwards.
    pub seen: &'a mut bool,
}

/// Runs one probe; the error says what failed.
pub async fn probe(p: &Probe, timeout: Duration, ctx: ProbeCtx<'_>) -> Result<(), String> {
    match p {
        Probe::Log(text) => log_probe(text, ctx),
        _ => match tokio::time::timeout(timeout, run(p, timeout, ctx)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {timeout:?}")),
        },
    }
}

async fn run(p: &Probe, timeout: Duration, ctx: ProbeCtx<'_>) -> Result<(), String> {
    match p {
        Probe::Http { url, expect } => http(url, *expect).await,
        Probe::Tcp(addr) => tokio::net::TcpStream::connect(addr.as_str())
            .await
            .map(|_| ())
            .map_err(|e| format!("tcp {addr}: {e}")),
        Probe::Exec(argv) => exec(ctx.plan, ctx.unit, argv, timeout).await,
        Probe::Task(t) => t
            .run(TaskContext {
                unit: ctx.unit.to_string(),
                plan: ctx.plan.clone(),
                secrets: ctx.secrets.clone(),
                log: ctx.log.as_fn(),
            })
            .await
            .map_err(|e| e.to_string()),
        Probe::Log(_) => unreachable!("handled by log_probe"),
    }
}

fn log_probe(text: &str, ctx: ProbeCtx<'_>) -> Result<(), String> {
    if *ctx.seen {
        return Ok(());
    }
    if let Some(rx) = ctx.lines.as_mut() {
        loop {
            match rx.try_recv() {
                Ok(line) if line.contains(text) => {
                    *ctx.seen = true;
                    return Ok(());
                }
                Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
    }
    Err(format!("no log line containing {text:?} yet"))
}

/// Runs an `exec` probe as the unit itself runs: its user, group and workdir (never
/// root for a unit that is not). A container's user means nothing on the host, so probes
/// of podman units keep the daemon's identity.
async fn exec(plan: &Plan, unit: &str, argv: &[String], timeout: Duration) -> Result<(), String> {
    let sink = LogSink::quiet(&format!("{unit} health"));
    let (user, group, workdir) = match plan.unit(unit) {
        Some(u) if matches!(u.runtime, Runtime::Process) => {
            (u.user.clone(), u.group.clone(), u.workdir.clone())
        }
        _ => (None, None, None),
    };
    let mut child = ProcessChild::spawn(
        ProcessSpec {
            unit: unit.to_string(),
            argv: argv.to_vec(),
            env: BTreeMap::new(),
            user,
            group,
            workdir,
        },
        sink.clone(),
    )
    .map_err(|e| e.to_string())?;
    let exit = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(e) => {
            child.stop(Signal::SIGKILL, Duration::from_secs(1)).await;
            e
        }
        Err(_) => {
            child.stop(Signal::SIGKILL, Duration::from_secs(1)).await;
            return Err(format!("{} did not finish within {timeout:?}", argv[0]));
        }
    };
    if exit.success() {
        Ok(())
    } else {
        let last = sink
            .tail(1)
            .first()
            .map(|l| format!(": {l}"))
            .unwrap_or_default();
        Err(format!("{} {exit}{last}", argv.join(" ")))
    }
}

/// GET `url` over HTTP/1.1; healthy below 400, or on exactly `expect` when given.
async fn http(url: &str, expect: Option<u16>) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// probes are supported; probe the plain port"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let stream = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::USER_AGENT, "prometheus-stack-health")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| format!("GET {url}: {e}"))?;
    let resp = send
        .send_request(req)
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let code = resp.status().as_u16();
    let ok = match expect {
        Some(want) => code == want,
        None => code < 400,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("GET {url}: status {code}"))
    }
}
