//! The internal CA for `[proxy] tls = "internal"` (air-gapped sites): created once under
//! DATA_DIR/pki (`ca.crt`, `ca.key` 0600), it issues one leaf per site host under
//! `sites/` and re-issues a leaf when it nears expiry or the CA changed. Operators trust
//! `ca.crt` (`prometheus-stack ca` prints its path and fingerprint); units get it as
//! the plan's `proxy.ca_bundle` (NODE_EXTRA_CA_CERTS).
//!
//! A new CA carries X.509 name constraints (RFC 5280 §4.2.1.10): it can sign only for
//! the stack's domain and its subdomains, `localhost` and loopback addresses, so an
//! operator who trusts it system-wide trusts nothing else signed with its key. A CA
//! made before the constraints keeps working; `prometheus-stack ca rotate` replaces it
//! (and re-issues the leaves).

mod files;

use files::{read_text, write_private, write_public};
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints,
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

/// The CA in `dir`, created on first use constrained as [`ca_domain`] says.
pub fn ensure_stack_ca(
    dir: &Path,
    stack_domain: Option<&str>,
    hosts: &[String],
) -> Result<CaInfo, PkiError> {
    ensure_ca_for(dir, ca_domain(stack_domain, hosts).as_deref())
}

/// The CA in `dir`, created on first use constrained to `domain` (see the module doc);
/// without one it is created unconstrained (what it must sign for is unknown).
pub fn ensure_ca_for(dir: &Path, domain: Option<&str>) -> Result<CaInfo, PkiError> {
    let (cert, key) = ca_paths(dir);
    match (cert.exists(), key.exists()) {
        (true, true) => {}
        (false, false) => create_ca(dir, &cert, &key, domain)?,
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

/// Replaces the CA in `dir` by a new one constrained to `domain`; the old pair is kept as
/// `ca.crt.old`/`ca.key.old`. Leaves follow on their next [`ensure_site_certs`] (their
/// issuer fingerprint no longer matches).
pub fn rotate_ca(dir: &Path, domain: Option<&str>) -> Result<CaInfo, PkiError> {
    let (cert, key) = ca_paths(dir);
    for p in [&cert, &key] {
        if p.exists() {
            let old = p.with_extension(format!(
                "{}.old",
                p.extension().and_then(|e| e.to_str()).unwrap_or("")
            ));
            std::fs::rename(p, &old).map_err(|source| PkiError::Io {
                path: p.to_path_buf(),
                source,
            })?;
        }
    }
    ensure_ca_for(dir, domain)
}

/// The domain a new CA is limited to: the stack's domain when every site host is under
/// it, else the domain the site hosts share (an operator's site outside the domain
/// widens it rather than breaking); None when there is none.
pub fn ca_domain(stack_domain: Option<&str>, hosts: &[String]) -> Option<String> {
    let norm = |h: &str| h.trim_matches('.').to_ascii_lowercase();
    if let Some(d) = stack_domain.map(norm).filter(|d| !d.is_empty()) {
        let inside = |h: &String| {
            let h = norm(h.trim_start_matches("*."));
            h == d
                || h.ends_with(&format!(".{d}"))
                || h == "localhost"
                || h.parse::<std::net::IpAddr>().is_ok()
        };
        if hosts.iter().all(inside) {
            return Some(d);
        }
    }
    hosts_domain(hosts)
}

/// The name constraints of a new CA: `domain` (with its subdomains), `localhost`,
/// 127.0.0.0/8 and ::1.
pub fn scope(domain: &str) -> NameConstraints {
    let mut permitted = vec![GeneralSubtree::DnsName(domain.into())];
    permitted.push(GeneralSubtree::DnsName("localhost".into()));
    permitted.push(GeneralSubtree::IpAddress(CidrSubnet::V4(
        [127, 0, 0, 0],
        [255, 0, 0, 0],
    )));
    let mut one = [0u8; 16];
    one[15] = 1;
    permitted.push(GeneralSubtree::IpAddress(CidrSubnet::V6(one, [0xff; 16])));
    NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: Vec::new(),
    }
}

/// The domain the sites share, for a CA created by [`ensure_site_certs`] itself: each
/// host's parent (the host when it has two labels), then their common suffix; None when
/// that is a single label or there is no DNS host.
fn hosts_domain(hosts: &[String]) -> Option<String> {
    let mut common: Option<Vec<String>> = None;
    for h in hosts {
        let h = h
            .trim_start_matches("*.")
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if h == "localhost" || h.parse::<std::net::IpAddr>().is_ok() {
            continue;
        }
        let mut labels: Vec<String> = h.split('.').rev().map(str::to_string).collect();
        if labels.len() > 2 {
            labels.pop();
        }
        common = Some(match common {
            None => labels,
            Some(c) => c
                .into_iter()
                .zip(labels)
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a)
                .collect(),
        });
    }
    let c = common?;
    (c.len() >= 2).then(|| c.into_iter().rev().collect::<Vec<_>>().join("."))
}

fn create_ca(dir: &Path, cert: &Path, key: &Path, domain: Option<&str>) -> Result<(), PkiError> {
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
    params.name_constraints = domain.map(scope);
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
    let ca = ensure_stack_ca(dir, None, hosts)?;
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
        let ca1 = ensure_ca_for(d.path(), Some("example.test")).unwrap();
        let ca2 = ensure_ca_for(d.path(), None).unwrap();
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

    #[test]
    fn ca_domain_is_the_stack_domain_or_what_the_sites_share() {
        let h = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let sites = h(&["lobe.example.test", "*.example.test", "localhost"]);
        assert_eq!(
            ca_domain(Some("example.test"), &sites).as_deref(),
            Some("example.test")
        );
        // A site outside the stack's domain widens the scope to what all share.
        let mixed = h(&["lobe.a.example.test", "chat.b.example.test"]);
        assert_eq!(
            ca_domain(Some("a.example.test"), &mixed).as_deref(),
            Some("example.test")
        );
        assert_eq!(
            ca_domain(None, &h(&["lobe.example.test"])).as_deref(),
            Some("example.test")
        );
        assert_eq!(
            ca_domain(None, &h(&["example.test"])).as_deref(),
            Some("example.test")
        );
        // Nothing shared beyond a top-level label: no constraint rather than a wrong one.
        assert_eq!(
            ca_domain(None, &h(&["a.example.org", "b.example.test"])),
            None
        );
        assert_eq!(ca_domain(None, &h(&["127.0.0.1"])), None);
    }
}
