//! The internal CA for `[proxy] tls = "internal"` (air-gapped sites): created once under
//! DATA_DIR/pki (`ca.crt`, `ca.key` 0600), it issues one leaf per site host under
//! `sites/` and re-issues a leaf when it nears expiry or the CA changed. Operators trust
//! `ca.crt` (`prometheus-stack ca` prints its path and fingerprint); units get it as
//! the plan's `proxy.ca_bundle` (NODE_EXTRA_CA_CERTS).

mod files;

use files::{read_text, write_private, write_public};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use time::OffsetDateTime;

/// An internal CA failure, naming the file involved.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create {what}: {reason}")]
    Generate { what: String, reason: String },
    #[error("{path} is not a usable PEM certificate or key: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("{present} exists but {missing} does not: restore it, or remove both to create a new CA (clients must then trust the new one)")]
    HalfCa { present: PathBuf, missing: PathBuf },
}

/// The CA as operators need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaInfo {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// SHA-256 of the DER certificate, `AA:BB:…` as `openssl x509 -fingerprint -sha256` prints it.
    pub sha256: String,
}

/// Lifetime of issued leaves.
#[derive(Debug, Clone, Copy)]
pub struct LeafPolicy {
    pub validity: Duration,
    /// Re-issue when less than this remains.
    pub renew_before: Duration,
}

impl Default for LeafPolicy {
    fn default() -> Self {
        LeafPolicy {
            validity: Duration::from_secs(365 * 86400),
            renew_before: Duration::from_secs(30 * 86400),
        }
    }
}

/// A site's issued certificate files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedLeaf {
    pub host: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86400);

/// `ca.crt` and `ca.key` inside `dir`.
pub fn ca_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("ca.crt"), dir.join("ca.key"))
}

/// The CA in `dir`, created on first use.
pub fn ensure_ca(dir: &Path) -> Result<CaInfo, PkiError> {
    let (cert, key) = ca_paths(dir);
    match (cert.exists(), key.exists()) {
        (true, true) => {}
        (false, false) => create_ca(dir, &cert, &key)?,
        (true, false) => {
            return Err(PkiError::HalfCa {
                present: cert,
                missing: key,
            })
        }
        (false, true) => {
            return Err(PkiError::HalfCa {
                present: key,
                missing: cert,
            })
        }
    }
    let sha256 = fingerprint(&cert)?;
    Ok(CaInfo { cert, key, sha256 })
}

/// The existing CA in `dir`, if any (never creates one).
pub fn ca_info(dir: &Path) -> Result<Option<CaInfo>, PkiError> {
    let (cert, key) = ca_paths(dir);
    if !cert.exists() {
        return Ok(None);
    }
    let sha256 = fingerprint(&cert)?;
    Ok(Some(CaInfo { cert, key, sha256 }))
}

fn gen_err(what: &str) -> impl Fn(rcgen::Error) -> PkiError + '_ {
    move |e| PkiError::Generate {
        what: what.to_string(),
        reason: e.to_string(),
    }
}

fn create_ca(dir: &Path, cert: &Path, key: &Path) -> Result<(), PkiError> {
    files::create_dir(dir)?;
    let kp = KeyPair::generate().map_err(gen_err("the CA key"))?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err("the CA"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "prometheus-stack");
    dn.push(
        DnType::CommonName,
        format!("prometheus-stack internal CA {}", short_id()),
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = SystemTime::now();
    params.not_before = OffsetDateTime::from(now - Duration::from_secs(3600));
    params.not_after = OffsetDateTime::from(now + CA_VALIDITY);
    let ca = params.self_signed(&kp).map_err(gen_err("the CA"))?;
    write_private(key, kp.serialize_pem().as_bytes())?;
    write_public(cert, ca.pem().as_bytes())?;
    tracing::info!(cert = %cert.display(), "pki: created the internal CA");
    Ok(())
}

/// Eight hex digits so two installations' CAs are told apart in trust stores.
fn short_id() -> String {
    let mut b = [0u8; 4];
    rand::Rng::fill(&mut rand::thread_rng(), &mut b[..]);
    hex::encode(b)
}

/// Leaf files of `host` inside `dir` (`*` spelled `_wildcard`).
pub fn leaf_paths(dir: &Path, host: &str) -> (PathBuf, PathBuf, PathBuf) {
    let safe = host.replace('*', "_wildcard");
    let sites = dir.join("sites");
    (
        sites.join(format!("{safe}.crt")),
        sites.join(format!("{safe}.key")),
        sites.join(format!("{safe}.issuer")),
    )
}

/// Makes sure every host has a valid leaf from the current CA; issues or renews as needed.
pub fn ensure_site_certs(
    dir: &Path,
    hosts: &[String],
    policy: &LeafPolicy,
) -> Result<Vec<IssuedLeaf>, PkiError> {
    let ca = ensure_ca(dir)?;
    let mut issuer: Option<Issuer<'static, KeyPair>> = None;
    let mut out = Vec::new();
    for host in hosts {
        let (cert, key, issuer_file) = leaf_paths(dir, host);
        if needs_issue(&cert, &key, &issuer_file, &ca, policy) {
            if issuer.is_none() {
                issuer = Some(load_issuer(&ca)?);
            }
            let iss = issuer.as_ref().expect("loaded above");
            issue_leaf(host, iss, policy, &cert, &key)?;
            write_public(&issuer_file, ca.sha256.as_bytes())?;
            tracing::info!(site = %host, cert = %cert.display(), "pki: issued a certificate from the internal CA");
        }
        out.push(IssuedLeaf {
            host: host.clone(),
            cert,
            key,
        });
    }
    Ok(out)
}

fn needs_issue(cert: &Path, key: &Path, issuer: &Path, ca: &CaInfo, p: &LeafPolicy) -> bool {
    if !key.exists() {
        return true;
    }
    match std::fs::read_to_string(issuer) {
        Ok(s) if s.trim() == ca.sha256 => {}
        _ => return true,
    }
    match not_after(cert) {
        Ok(end) => end < SystemTime::now() + p.renew_before,
        Err(_) => true,
    }
}

fn load_issuer(ca: &CaInfo) -> Result<Issuer<'static, KeyPair>, PkiError> {
    let key_pem = read_text(&ca.key)?;
    let kp = KeyPair::from_pem(&key_pem).map_err(|e| PkiError::Parse {
        path: ca.key.clone(),
        reason: e.to_string(),
    })?;
    let cert_pem = read_text(&ca.cert)?;
    Issuer::from_ca_cert_pem(&cert_pem, kp).map_err(|e| PkiError::Parse {
        path: ca.cert.clone(),
        reason: e.to_string(),
    })
}

fn issue_leaf(
    host: &str,
    issuer: &Issuer<'static, KeyPair>,
    policy: &LeafPolicy,
    cert: &Path,
    key: &Path,
) -> Result<(), PkiError> {
    let what = format!("a certificate for {host}");
    let kp = KeyPair::generate().map_err(gen_err(&what))?;
    let mut params = CertificateParams::new(vec![host.to_string()]).map_err(gen_err(&what))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, host);
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let now = SystemTime::now();
    params.not_before = OffsetDateTime::from(now - Duration::from_secs(3600));
    params.not_after = OffsetDateTime::from(now + policy.validity);
    let leaf = params.signed_by(&kp, issuer).map_err(gen_err(&what))?;
    if let Some(parent) = cert.parent() {
        files::create_dir(parent)?;
    }
    // Key first: the cert watcher reloads once both match again.
    write_private(key, kp.serialize_pem().as_bytes())?;
    write_public(cert, leaf.pem().as_bytes())?;
    Ok(())
}

/// When the first certificate in a PEM file expires.
pub fn not_after(path: &Path) -> Result<SystemTime, PkiError> {
    let der = first_der(path)?;
    let (_, x) = x509_parser::parse_x509_certificate(&der).map_err(|e| PkiError::Parse {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let secs = x.validity().not_after.timestamp();
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64))
}

/// SHA-256 fingerprint of the first certificate in a PEM file.
pub fn fingerprint(path: &Path) -> Result<String, PkiError> {
    let der = first_der(path)?;
    let digest = Sha256::digest(&der);
    Ok(digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":"))
}

fn first_der(path: &Path) -> Result<Vec<u8>, PkiError> {
    let text = read_text(path)?;
    let mut rd = text.as_bytes();
    let first = rustls_pemfile::certs(&mut rd).next();
    match first {
        Some(Ok(c)) => Ok(c.to_vec()),
        Some(Err(e)) => Err(PkiError::Parse {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
        None => Err(PkiError::Parse {
            path: path.to_path_buf(),
            reason: "no CERTIFICATE block".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_is_created_once_and_leaves_renew_before_expiry() {
        let d = tempfile::tempdir().unwrap();
        let ca1 = ensure_ca(d.path()).unwrap();
        let ca2 = ensure_ca(d.path()).unwrap();
        assert_eq!(ca1, ca2);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&ca1.key).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let hosts = vec![
            "lobe.example.test".to_string(),
            "*.example.test".to_string(),
        ];
        let short = LeafPolicy {
            validity: Duration::from_secs(86400),
            renew_before: Duration::from_secs(3600),
        };
        let l1 = ensure_site_certs(d.path(), &hosts, &short).unwrap();
        let f1 = fingerprint(&l1[0].cert).unwrap();
        // Still far from expiry: kept.
        ensure_site_certs(d.path(), &hosts, &short).unwrap();
        assert_eq!(fingerprint(&l1[0].cert).unwrap(), f1);
        // One day left but renewal starts 30 days out: re-issued.
        ensure_site_certs(d.path(), &hosts, &LeafPolicy::default()).unwrap();
        let f2 = fingerprint(&l1[0].cert).unwrap();
        assert_ne!(f1, f2);
        let end = not_after(&l1[0].cert).unwrap();
        assert!(end > SystemTime::now() + Duration::from_secs(300 * 86400));
        assert!(l1[1].cert.ends_with("sites/_wildcard.example.test.crt"));
    }
}
