//! `prometheus-stack ca`: where the internal CA certificate is and its fingerprint, so
//! operators can install it as trusted (created now if the daemon has not yet).

use super::Ctx;
use crate::config::model::TlsMode;
use anyhow::Context;
use std::process::ExitCode;

/// Prints the CA certificate path and SHA-256 fingerprint.
pub fn ca(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let plan = ctx
        .plan(crate::plan::BuildOptions { check_host: false })
        .context("cannot build the plan")?;
    let proxy = plan
        .proxy
        .as_ref()
        .context("the config has no [proxy] section, so there is no internal CA")?;
    if proxy.tls != TlsMode::Internal {
        anyhow::bail!(
            "[proxy] tls = \"files\": certificates come from the files named in [[proxy.site]]; \
             set tls = \"internal\" to use the internal CA"
        );
    }
    let info = crate::pki::ensure_ca(&proxy.pki_dir)?;
    println!("certificate: {}", info.cert.display());
    println!("sha256:      {}", info.sha256);
    println!(
        "trust it, e.g.: cp {} /usr/local/share/ca-certificates/prometheus-stack.crt && update-ca-certificates",
        info.cert.display()
    );
    Ok(ExitCode::SUCCESS)
}
