//! Helpers every preset (and the plan builder) shares: paths relative to the config,
//! public origins, the one "podman or process" rule, the `node` program, the internal CA.

use crate::config::model::{ConfigFile, RuntimeName, ServiceSection, TlsMode};
use crate::plan::StackInfo;
use std::path::{Path, PathBuf};

/// Relative paths in the file are relative to the file's folder.
pub fn absolute(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        // Drop "./" segments so paths print cleanly.
        base.join(p).components().collect()
    }
}

/// `https://HOST`, with `:PORT` when the proxy listens elsewhere than 443.
pub fn https_origin(cfg: &ConfigFile, host: &str) -> String {
    let port = cfg
        .proxy
        .as_ref()
        .and_then(|p| p.https.rsplit_once(':'))
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .filter(|p| *p != 443);
    match port {
        Some(p) => format!("https://{host}:{p}"),
        None => format!("https://{host}"),
    }
}

/// Whether a section runs in a container: `runtime = "podman"` (its own or the stack's)
/// or an `image`, unless the section itself says `runtime = "process"`.
pub fn uses_podman(cfg: &ConfigFile, section: &ServiceSection) -> bool {
    let rt = section.runtime.unwrap_or(cfg.stack.runtime);
    (rt == RuntimeName::Podman || section.image.is_some())
        && section.runtime != Some(RuntimeName::Process)
}

/// The `node` to run a native release with: the section's `node` key, else from PATH.
pub fn node_program(section: &ServiceSection) -> String {
    section
        .node
        .clone()
        .unwrap_or_else(|| PathBuf::from("node"))
        .display()
        .to_string()
}

/// DATA_DIR/pki, where the internal CA and the leaf certificates live.
pub fn pki_dir(stack: &StackInfo) -> PathBuf {
    stack.data_dir.join("pki")
}

/// The internal CA certificate units must trust to call our HTTPS (`tls = "internal"`).
pub fn ca_bundle(cfg: &ConfigFile, stack: &StackInfo) -> Option<PathBuf> {
    cfg.proxy
        .as_ref()
        .filter(|p| p.tls == TlsMode::Internal)
        .map(|_| pki_dir(stack).join("ca.crt"))
}
