//! `doctor`: checks the running installation end to end, one finding per problem with its fix.
//!
//! Each check is a small function over the plan (and, where it needs one, the daemon's
//! status or a live service) that returns findings; `run` calls them in order. File-level
//! checks (DNS, certificates, images, clock, disk, ports, GPU driver) run even when the
//! daemon is down; the checks that talk to running units (extensions, bucket, the OIDC
//! issuer through the proxy, Logto's stored redirect URI) need it.

mod bucket;
mod certs;
mod clock;
mod disk;
mod dns;
mod extensions;
mod gpu;
mod https;
mod images;
mod oidc;
mod ports;
mod redirect;
pub mod report;
mod units;

pub use bucket::{check_bucket, check_bucket_with};
pub use certs::{check_cert_file, check_certs};
pub use clock::{check_clock, parse_chronyc, parse_timedatectl, ClockTools};
pub use disk::{check_disk, DiskLimits};
pub use dns::{check_dns, dns_hosts};
pub use extensions::check_extensions;
pub use gpu::check_gpu;
pub use images::check_images;
pub use oidc::check_issuer;
pub use ports::{check_ports, needed_ports};
pub use redirect::check_redirect;
pub use report::Report;
pub use units::{check_daemon, check_units};

use crate::plan::Plan;
use crate::secrets::SecretStore;
use serde::Serialize;
use std::path::Path;

/// How bad a finding is: errors fail `doctor` (exit 1), warnings and unknowns do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    /// The check could not tell (e.g. no time-sync service to ask).
    Unknown,
}

impl Severity {
    /// The lowercase word printed before the finding.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Unknown => "unknown",
        }
    }
}

/// One problem: which check found it, what is wrong, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub severity: Severity,
    pub message: String,
    pub fix: String,
}

impl Finding {
    /// An error finding.
    pub fn error(check: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(check, Severity::Error, message, fix)
    }
    /// A warning finding.
    pub fn warning(
        check: &'static str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(check, Severity::Warning, message, fix)
    }
    /// A finding of any severity.
    pub fn new(
        check: &'static str,
        severity: Severity,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Finding {
            check,
            severity,
            message: message.into(),
            fix: fix.into(),
        }
    }
}

/// Runs every check against `plan`, the daemon on `socket` and the `backups` folder.
pub async fn run(plan: &Plan, socket: &Path, backups: &Path) -> Report {
    let mut r = Report::default();
    let status = crate::control::Client::new(socket)
        .get_json("/v1/status")
        .await;
    let daemon_pid = status.as_ref().ok().and_then(|_| units::peer_pid(socket));
    r.add("daemon", check_daemon(&status));
    if let Ok(v) = &status {
        r.add("units", check_units(v, crate::supervisor::state::now()));
    }
    r.add("dns", check_dns(&dns_hosts(plan)));
    r.add("certs", check_certs(plan, std::time::SystemTime::now()));
    r.add("images", check_images(plan, "podman").await);
    r.add("clock", check_clock(&ClockTools::system()).await);
    r.add("disk", check_disk(plan, backups, &DiskLimits::default()));
    r.add("ports", check_ports(&needed_ports(plan), daemon_pid));
    r.add("gpu", check_gpu(plan, None));
    if status.is_ok() {
        // These talk to the running units; without the daemon they would only repeat
        // "connection refused" under another name.
        let secrets = SecretStore::new(&plan.stack.data_dir);
        r.add("extensions", check_extensions(plan, &secrets).await);
        r.add("bucket", check_bucket(plan, &secrets).await);
        r.add("oidc", check_issuer(plan).await);
        r.add("redirect", check_redirect(plan, &secrets).await);
    }
    r
}
