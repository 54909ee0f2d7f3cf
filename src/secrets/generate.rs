//! First values of secrets.

use super::SecretError;
use crate::plan::SecretKind;
use base64::Engine;
use rand::RngCore;

/// A new value for a secret of this kind.
pub fn generate(name: &str, kind: &SecretKind) -> Result<String, SecretError> {
    match kind {
        SecretKind::Random { bytes } => {
            let mut buf = vec![0u8; *bytes];
            rand::rngs::OsRng.fill_bytes(&mut buf);
            Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
        }
        SecretKind::RsaJwks => Err(SecretError::Generate {
            name: name.into(),
            reason: "RS256 JWK generation is not built yet".into(),
        }),
        SecretKind::Provided => Err(SecretError::Generate {
            name: name.into(),
            reason: "this secret is written by a provisioning unit; start that unit first".into(),
        }),
    }
}
