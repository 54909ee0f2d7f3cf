//! What can stop the proxy from starting or reloading, worded for the operator.

use std::path::PathBuf;

/// A proxy start/reload failure; each names the file or address to fix.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the plan has no [proxy] section")]
    NoProxySection,
    #[error("cannot listen on {addr} ([proxy] {key}): {source}")]
    Bind {
        addr: String,
        key: &'static str,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid PEM file: {reason}")]
    BadPem { path: PathBuf, reason: String },
    #[error(
        "{path} holds no PEM certificate (expected a chain starting with the site certificate)"
    )]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoPrivateKey { path: PathBuf },
    #[error("{path}: unsupported private key: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("{key} does not belong to the certificate in {cert}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("site {host:?} has no certificate: set cert and key in its [[proxy.site]] or use [proxy] tls = \"internal\"")]
    MissingCertPaths { host: String },
    #[error("internal CA: {0}")]
    Pki(#[from] crate::pki::PkiError),
    #[error("cannot install the {0} signal handler: {1}")]
    Signal(&'static str, std::io::Error),
    #[error("TLS setup: {0}")]
    Tls(String),
}
