//! Each proxy site's certificate: present, parseable, valid now, for the site's name, and
//! not expiring within 21 days. tls = "files" reads the configured paths, tls = "internal"
//! the leaves the daemon issued under DATA_DIR/pki.

use super::Finding;
use crate::config::model::TlsMode;
use crate::plan::Plan;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Expiry sooner than this is a warning.
const WARN_BEFORE: Duration = Duration::from_secs(21 * 24 * 3600);

/// Every site of the proxy, at `now`.
pub fn check_certs(plan: &Plan, now: SystemTime) -> Vec<Finding> {
    let Some(proxy) = &plan.proxy else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, site) in proxy.sites.iter().enumerate() {
        let (path, renew) = match proxy.tls {
            TlsMode::Files => match &site.cert {
                Some(p) => (p.clone(), format!("put a current certificate for {} at {} (proxy.site.{i}.cert; certbot renew for Let's Encrypt); the proxy reloads it by itself", site.host, p.display())),
                None => continue,
            },
            TlsMode::Internal => (
                crate::pki::leaf_paths(&proxy.pki_dir, &site.host).0,
                "restart the daemon (systemctl restart prometheus-stack): it issues and renews site certificates from its CA".to_string(),
            ),
        };
        out.extend(check_cert_file(&site.host, &path, now, &renew));
    }
    out
}

/// One certificate file for `host`; `fix` says how this installation gets a new one.
pub fn check_cert_file(host: &str, path: &Path, now: SystemTime, fix: &str) -> Vec<Finding> {
    let der = match read_der(host, path) {
        Ok(d) => d,
        Err(m) => return vec![Finding::error("certs", m, fix)],
    };
    let cert = match x509_parser::parse_x509_certificate(&der) {
        Ok((_, c)) => c,
        Err(e) => {
            let m = format!("certificate {} does not parse: {e}", path.display());
            return vec![Finding::error("certs", m, fix)];
        }
    };
    let names = cert_names(&cert);
    let mut out = Vec::new();
    if !names.iter().any(|n| name_matches(n, host)) {
        out.push(Finding::error(
            "certs",
            format!(
                "certificate {} is for {}, not {host}",
                path.display(),
                if names.is_empty() {
                    "no host name".into()
                } else {
                    names.join(", ")
                }
            ),
            fix,
        ));
    }
    let validity = cert.validity();
    let day = |t: &x509_parser::time::ASN1Time| t.to_datetime().date().to_string();
    let at = |t: &x509_parser::time::ASN1Time| {
        SystemTime::UNIX_EPOCH + Duration::from_secs(t.timestamp().max(0) as u64)
    };
    let end = at(&validity.not_after);
    if at(&validity.not_before) > now {
        out.push(Finding::error(
            "certs",
            format!(
                "certificate {} for {host} is not valid before {} (is the clock right?)",
                path.display(),
                day(&validity.not_before)
            ),
            fix,
        ));
    } else if end <= now {
        out.push(Finding::error(
            "certs",
            format!(
                "certificate {} for {host} expired on {}",
                path.display(),
                day(&validity.not_after)
            ),
            fix,
        ));
    } else if end.duration_since(now).unwrap_or_default() < WARN_BEFORE {
        let days = end.duration_since(now).unwrap_or_default().as_secs() / 86400;
        let s = if days == 1 { "" } else { "s" };
        out.push(Finding::warning(
            "certs",
            format!(
                "certificate {} for {host} expires in {days} day{s} ({})",
                path.display(),
                day(&validity.not_after)
            ),
            fix,
        ));
    }
    out
}

/// The first certificate of a PEM file, as DER.
fn read_der(host: &str, path: &Path) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path).map_err(|e| {
        format!(
            "certificate {} for {host} cannot be read: {e}",
            path.display()
        )
    })?;
    let first = rustls_pemfile::certs(&mut pem.as_slice()).next();
    match first {
        Some(Ok(d)) => Ok(d.to_vec()),
        _ => Err(format!("{} holds no PEM certificate", path.display())),
    }
}

/// DNS names of the subjectAltName, else the subject's CN.
fn cert_names(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let san: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|s| {
            s.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    GeneralName::DNSName(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if !san.is_empty() {
        return san;
    }
    cert.subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(String::from))
        .collect()
}

/// RFC 6125: exact, or `*.rest` covering exactly one more label (a wildcard site's own
/// name `*.rest` is matched literally).
fn name_matches(name: &str, host: &str) -> bool {
    let (name, host) = (name.to_ascii_lowercase(), host.to_ascii_lowercase());
    if name == host {
        return true;
    }
    match (name.strip_prefix("*."), host.split_once('.')) {
        (Some(rest), Some((label, hrest))) => !label.is_empty() && label != "*" && rest == hrest,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;

    fn write_cert(
        dir: &Path,
        names: &[&str],
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> std::path::PathBuf {
        let mut p =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.not_before = from;
        p.not_after = to;
        let key = rcgen::KeyPair::generate().unwrap();
        let path = dir.join(format!("{}.crt", names[0].replace('*', "_")));
        std::fs::write(&path, p.self_signed(&key).unwrap().pem()).unwrap();
        path
    }

    #[test]
    fn wrong_name_expired_expiring_and_missing() {
        let d = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let days = time::Duration::days;
        let sys = SystemTime::now();
        let good = write_cert(
            d.path(),
            &["lobe.example.org"],
            now - days(1),
            now + days(90),
        );
        assert_eq!(check_cert_file("lobe.example.org", &good, sys, "F"), vec![]);

        let wrong = write_cert(
            d.path(),
            &["other.example.org"],
            now - days(1),
            now + days(90),
        );
        assert_eq!(
            check_cert_file("lobe.example.org", &wrong, sys, "F"),
            vec![Finding::error(
                "certs",
                format!(
                    "certificate {} is for other.example.org, not lobe.example.org",
                    wrong.display()
                ),
                "F"
            )]
        );

        let old = write_cert(
            d.path(),
            &["old.example.org"],
            now - days(30),
            now - days(2),
        );
        assert_eq!(
            check_cert_file("old.example.org", &old, sys, "F"),
            vec![Finding::error(
                "certs",
                format!(
                    "certificate {} for old.example.org expired on {}",
                    old.display(),
                    (now - days(2)).date()
                ),
                "F"
            )]
        );

        let soon = write_cert(
            d.path(),
            &["soon.example.org"],
            now - days(1),
            now + days(10) + time::Duration::hours(1),
        );
        assert_eq!(
            check_cert_file("soon.example.org", &soon, sys, "F"),
            vec![Finding::warning(
                "certs",
                format!(
                    "certificate {} for soon.example.org expires in 10 days ({})",
                    soon.display(),
                    (now + days(10) + time::Duration::hours(1)).date()
                ),
                "F"
            )]
        );

        let gone = d.path().join("gone.crt");
        let f = check_cert_file("x.example.org", &gone, sys, "F");
        assert!(
            f[0].message.starts_with(&format!(
                "certificate {} for x.example.org cannot be read: No such file",
                gone.display()
            )),
            "{f:?}"
        );
    }

    #[test]
    fn wildcards_cover_one_label() {
        assert!(name_matches("*.example.org", "lobe.example.org"));
        assert!(!name_matches("*.example.org", "a.lobe.example.org"));
        assert!(!name_matches("*.example.org", "example.org"));
        assert!(name_matches("*.example.org", "*.example.org"));
    }
}
