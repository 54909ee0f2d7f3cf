//! The proxy alone, for benchmarks: `proxy_standalone CONFIG [THREADS]`.
//!
//! CONFIG is a stack.toml with a [proxy] section (routes to `host:port` addresses);
//! every unit counts as healthy. THREADS runtime threads (default 1, like one nginx
//! worker). Logs: RUST_LOG (default `warn`, so no access log). SIGHUP re-reads
//! certificates, SIGINT/SIGTERM stop.

use prometheus_stack::plan::{build_from_file, BuildOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(config) = args.next().map(PathBuf::from) else {
        eprintln!("usage: proxy_standalone CONFIG [THREADS]");
        return ExitCode::from(2);
    };
    let threads: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(1);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let plan = match build_from_file(&config, BuildOptions::default()) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            eprintln!("proxy_standalone: {e}");
            return ExitCode::from(1);
        }
    };
    // One thread: a current-thread runtime, like an nginx worker's event loop.
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("proxy_standalone: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(prometheus_stack::proxy::serve_standalone(plan)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("proxy_standalone: {e}");
            ExitCode::from(1)
        }
    }
}
