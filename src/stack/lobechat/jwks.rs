//! LobeChat's `JWKS_KEY`: an RS256 private JWK set, generated once into the secrets store
//! (`SecretKind::RsaJwks`), or given by the operator — then checked here, because LobeChat
//! only fails on it later, when an async task (image generation) signs its first token.

use crate::plan::{SecretKind, SecretSpec};

/// Name of the secret holding the JWK set.
pub const SECRET: &str = "lobechat-jwks";

/// The secret's spec.
pub fn spec(consumer: &str) -> SecretSpec {
    SecretSpec {
        kind: SecretKind::RsaJwks,
        owner: None,
        consumers: vec![consumer.to_string()],
        rotate: None,
        description: "LobeChat JWKS_KEY: RS256 private key set for its internal tokens".into(),
    }
}

/// Why a JWKS_KEY given by the operator is not usable.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("not JSON ({0})")]
    NotJson(#[source] serde_json::Error),
    #[error("needs {{\"keys\": [ … ]}}")]
    NoKeys,
    #[error("needs an RSA private key (kty RSA, alg RS256, with d, p, q, dp, dq, qi)")]
    NoPrivateKey,
}

/// Why `text` is not a usable JWKS_KEY, if it is not.
pub fn check(text: &str) -> Result<(), JwksError> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(JwksError::NotJson)?;
    let keys = v
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or(JwksError::NoKeys)?;
    let usable = keys.iter().any(|k| {
        k.get("kty").and_then(|x| x.as_str()) == Some("RSA")
            && k.get("alg").and_then(|x| x.as_str()).unwrap_or("RS256") == "RS256"
            && ["n", "e", "d", "p", "q", "dp", "dq", "qi"]
                .iter()
                .all(|f| k.get(*f).and_then(|x| x.as_str()).is_some())
    });
    if usable {
        Ok(())
    } else {
        Err(JwksError::NoPrivateKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_sets_pass_and_public_keys_do_not() {
        let good = crate::secrets::generate("x", &SecretKind::RsaJwks).unwrap();
        assert!(check(&good).is_ok());
        let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
        v["keys"][0].as_object_mut().unwrap().remove("d");
        assert!(check(&v.to_string()).is_err());
        assert!(check("{}").is_err());
        assert!(check("not json").is_err());
    }
}
