//! `prometheus-stack ca`: where the internal CA certificate is and its fingerprint, so
//! operators can install it as trusted (created now if the daemon has not yet), and
//! `ca rotate`: a new CA (name-constrained to the stack's domain) with new leaves.

use super::Ctx;
use crate::config::model::TlsMode;
use crate::plan::{Plan, ProxyPlan};
use anyhow::Context;
use clap::Subcommand;
use std::process::ExitCode;

/// `ca` subcommands; none prints the CA.
#[derive(Subcommand, Debug)]
pub enum CaAction {
    /// Replace the CA (the old one is kept as ca.crt.old) and re-issue every site's
    /// certificate; clients must trust the new ca.crt. Also how a CA made before name
    /// constraints gets them.
    Rotate,
}

/// The plan and its `[proxy]` with `tls = "internal"`.
fn internal_proxy(ctx: &Ctx) -> anyhow::Result<(Plan, ProxyPlan)> {
    let plan = ctx
        .plan(crate::plan::BuildOptions { check_host: false })
        .context("cannot build the plan")?;
    let proxy = plan
        .proxy
        .clone()
        .context("the config has no [proxy] section, so there is no internal CA")?;
    if proxy.tls != TlsMode::Internal {
        anyhow::bail!(
            "[proxy] tls = \"files\": certificates come from the files named in [[proxy.site]]; \
             set tls = \"internal\" to use the internal CA"
        );
    }
    Ok((plan, proxy))
}

/// Prints the CA certificate path and SHA-256 fingerprint, or rotates the CA.
pub fn ca(ctx: &Ctx, action: Option<CaAction>) -> anyhow::Result<ExitCode> {
    let (plan, proxy) = internal_proxy(ctx)?;
    let hosts: Vec<String> = proxy.sites.iter().map(|s| s.host.clone()).collect();
    let domain = plan.stack.domain.as_deref();
    let info = match action {
        None => crate::pki::ensure_stack_ca(&proxy.pki_dir, domain, &hosts)?,
        Some(CaAction::Rotate) => {
            let scope = crate::pki::ca_domain(domain, &hosts);
            let info = crate::pki::rotate_ca(&proxy.pki_dir, scope.as_deref())?;
            // The proxy's certificate watcher picks the new leaves up.
            crate::pki::ensure_site_certs(
                &proxy.pki_dir,
                &hosts,
                &crate::pki::LeafPolicy::default(),
            )?;
            println!(
                "new internal CA{}; {} site certificate(s) re-issued; restart units that call the sites (they load the CA at start)",
                scope.map(|d| format!(" limited to {d}, localhost and loopback")).unwrap_or_default(),
                hosts.len()
            );
            info
        }
    };
    println!("certificate: {}", info.cert.display());
    println!("sha256:      {}", info.sha256);
    println!(
        "trust it, e.g.: cp {} /usr/local/share/ca-certificates/prometheus-stack.crt && update-ca-certificates",
        info.cert.display()
    );
    Ok(ExitCode::SUCCESS)
}
