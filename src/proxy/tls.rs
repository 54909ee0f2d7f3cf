//! rustls server settings: TLS 1.2 and 1.3 only, ALPN h2 then http/1.1, certificates
//! chosen per SNI by the [`CertStore`](super::certs::CertStore).

use super::certs::{CertStore, SniResolver};
use super::error::ProxyError;
use rustls::ServerConfig;
use std::sync::Arc;

/// Builds the server config around the store's SNI resolver.
pub(crate) fn server_config(store: Arc<CertStore>) -> Result<Arc<ServerConfig>, ProxyError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ProxyError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver(store)));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Our cipher order (rustls': AEAD, forward secrecy, strongest first), not the client's.
    cfg.ignore_client_order = true;
    // Resumption saves a full handshake for returning browsers.
    cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    cfg.ticketer =
        rustls::crypto::ring::Ticketer::new().map_err(|e| ProxyError::Tls(e.to_string()))?;
    Ok(Arc::new(cfg))
}
