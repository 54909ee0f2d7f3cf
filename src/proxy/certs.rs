//! Site certificates: PEM chains loaded from disk (RSA or ECDSA keys), served by SNI,
//! re-read on reload and whenever the files behind them change (Let's Encrypt renewals
//! swap symlinks). A broken new certificate is refused and the last good one kept.

use super::error::ProxyError;
use super::routes::wildcard_lookup;
use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Where one site's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertSource {
    /// Site host (lowercase, may be `*.example.com`).
    pub host: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Reads a PEM chain and its key and checks that they belong together.
pub(crate) fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, ProxyError> {
    let read = |p: &Path| {
        File::open(p)
            .map(BufReader::new)
            .map_err(|source| ProxyError::ReadFile {
                path: p.to_path_buf(),
                source,
            })
    };
    let chain = rustls_pemfile::certs(&mut read(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ProxyError::BadPem {
            path: cert.to_path_buf(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(ProxyError::NoCertificate {
            path: cert.to_path_buf(),
        });
    }
    let der = rustls_pemfile::private_key(&mut read(key)?)
        .map_err(|e| ProxyError::BadPem {
            path: key.to_path_buf(),
            reason: e.to_string(),
        })?
        .ok_or_else(|| ProxyError::NoPrivateKey {
            path: key.to_path_buf(),
        })?;
    let signing =
        rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| ProxyError::BadKey {
            path: key.to_path_buf(),
            reason: e.to_string(),
        })?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match().map_err(|_| ProxyError::KeyMismatch {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
    })?;
    Ok(ck)
}

/// Identity of the files as they are now (symlinks followed): a renewal that swaps a
/// symlink or rewrites a file changes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Vec<(u64, u64, i64, i64, u64)>);

fn stamp(src: &CertSource) -> Stamp {
    Stamp(
        [&src.cert, &src.key]
            .iter()
            .map(|p| match std::fs::metadata(p) {
                Ok(m) => (m.dev(), m.ino(), m.mtime(), m.mtime_nsec(), m.len()),
                Err(_) => (0, 0, 0, 0, 0),
            })
            .collect(),
    )
}

/// What the resolver serves: host → key, swapped as a whole.
#[derive(Debug, Default)]
struct CertMap {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: Vec<(String, Arc<CertifiedKey>)>,
    /// For clients that send no SNI or an unknown name (they then get a 404/421 page).
    default: Option<Arc<CertifiedKey>>,
}

#[derive(Debug)]
struct Loaded {
    src: CertSource,
    /// Files as last loaded (good or broken), so a broken file is reported once.
    seen: Stamp,
    /// A change seen on the last poll; loaded once it holds still for one more poll, so a
    /// renewal that swaps cert and key one after the other is not caught half-done.
    pending: Option<Stamp>,
    key: Option<Arc<CertifiedKey>>,
}

/// The certificates of all sites; cheap to read on every handshake.
#[derive(Debug, Default)]
pub(crate) struct CertStore {
    map: ArcSwap<CertMap>,
    loaded: Mutex<Vec<Loaded>>,
}

impl CertStore {
    /// Loads every source; at start a broken certificate is an error.
    pub fn new(sources: &[CertSource]) -> Result<Arc<Self>, ProxyError> {
        let mut loaded = Vec::new();
        for src in sources {
            let key = load_certified_key(&src.cert, &src.key)?;
            loaded.push(Loaded {
                src: src.clone(),
                seen: stamp(src),
                pending: None,
                key: Some(Arc::new(key)),
            });
        }
        let store = Arc::new(CertStore::default());
        store.publish(&loaded);
        *store.loaded.lock().unwrap_or_else(|e| e.into_inner()) = loaded;
        Ok(store)
    }

    /// Replaces the site list (reload): every certificate is read again; one that fails
    /// keeps its previous key when the host had one.
    pub fn replace(&self, sources: &[CertSource]) {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = Vec::new();
        for src in sources {
            let old = loaded
                .iter()
                .find(|l| l.src.host == src.host)
                .and_then(|l| l.key.clone());
            let key = match load_certified_key(&src.cert, &src.key) {
                Ok(k) => {
                    tracing::info!(site = %src.host, cert = %src.cert.display(), "proxy: certificate loaded");
                    Some(Arc::new(k))
                }
                Err(e) => {
                    log_refused(&src.host, &e, old.is_some());
                    old
                }
            };
            next.push(Loaded {
                src: src.clone(),
                seen: stamp(src),
                pending: None,
                key,
            });
        }
        self.publish(&next);
        *loaded = next;
    }

    /// Re-reads the certificates whose files changed since last looked at.
    pub fn poll(&self) {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let mut changed = false;
        for l in loaded.iter_mut() {
            let now = stamp(&l.src);
            if now == l.seen {
                l.pending = None;
                continue;
            }
            if l.pending.as_ref() != Some(&now) {
                l.pending = Some(now);
                continue;
            }
            l.pending = None;
            l.seen = now;
            match load_certified_key(&l.src.cert, &l.src.key) {
                Ok(k) => {
                    tracing::info!(site = %l.src.host, cert = %l.src.cert.display(), "proxy: certificate changed on disk, new handshakes use it");
                    l.key = Some(Arc::new(k));
                    changed = true;
                }
                Err(e) => log_refused(&l.src.host, &e, l.key.is_some()),
            }
        }
        if changed {
            self.publish(&loaded);
        }
    }

    fn publish(&self, loaded: &[Loaded]) {
        let mut map = CertMap::default();
        for l in loaded {
            let Some(key) = &l.key else { continue };
            if map.default.is_none() {
                map.default = Some(key.clone());
            }
            match l.src.host.strip_prefix('*') {
                Some(suffix) if suffix.starts_with('.') => {
                    map.wildcard.push((suffix.to_string(), key.clone()))
                }
                _ => {
                    map.exact.insert(l.src.host.clone(), key.clone());
                }
            }
        }
        map.wildcard.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        self.map.store(Arc::new(map));
    }

    fn lookup(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let map = self.map.load();
        if let Some(name) = sni {
            let name = name.to_ascii_lowercase();
            if let Some(k) = map.exact.get(&name) {
                return Some(k.clone());
            }
            if let Some(k) = wildcard_lookup(&map.wildcard, &name) {
                return Some(k.clone());
            }
        }
        map.default.clone()
    }
}

fn log_refused(host: &str, e: &ProxyError, keeping_old: bool) {
    if keeping_old {
        tracing::error!(site = %host, "proxy: new certificate refused, the previous one keeps serving: {e}");
    } else {
        tracing::error!(site = %host, "proxy: certificate refused, the site has no certificate: {e}");
    }
}

/// rustls hook: picks the certificate by SNI.
#[derive(Debug)]
pub(crate) struct SniResolver(pub Arc<CertStore>);

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.lookup(hello.server_name())
    }
}
