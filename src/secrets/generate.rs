//! First values of secrets.

use super::SecretError;
use crate::plan::SecretKind;
use base64::Engine;
use rand::RngCore;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{BigUint, RsaPrivateKey};
use sha2::{Digest, Sha256};

/// Size of the generated RS256 key: the common floor that every JOSE library accepts.
const RSA_BITS: usize = 2048;

/// A new value for a secret of this kind.
pub fn generate(name: &str, kind: &SecretKind) -> Result<String, SecretError> {
    match kind {
        SecretKind::Random { bytes } => {
            let mut buf = vec![0u8; *bytes];
            rand::rngs::OsRng.fill_bytes(&mut buf);
            Ok(b64(&buf))
        }
        SecretKind::RsaJwks => rsa_jwks().map_err(|reason| SecretError::Generate {
            name: name.into(),
            reason,
        }),
        SecretKind::Provided => Err(SecretError::Generate {
            name: name.into(),
            reason: "this secret is written by a provisioning unit; start that unit first".into(),
        }),
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn b64_uint(n: &BigUint) -> String {
    b64(&n.to_bytes_be())
}

/// An RS256 private JWK set with one key, as LobeChat's `JWKS_KEY` expects:
/// `{"keys":[{"kty":"RSA","alg":"RS256","use":"sig","kid",n,e,d,p,q,dp,dq,qi}]}`.
fn rsa_jwks() -> Result<String, String> {
    let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS)
        .map_err(|e| format!("RSA key generation failed: {e}"))?;
    let [p, q] = key.primes() else {
        return Err("RSA key generation returned more than two primes".into());
    };
    let one = BigUint::from(1u8);
    let d = key.d();
    let dp = d % (p - &one);
    let dq = d % (q - &one);
    // p is prime, so q^(p-2) mod p is q's inverse mod p (Fermat); avoids signed bigints.
    let qi = q.modpow(&(p - BigUint::from(2u8)), p);
    let n = b64_uint(key.n());
    let e = b64_uint(key.e());
    // RFC 7638 thumbprint: stable, and unique per key.
    let thumb = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    let kid = b64(&Sha256::digest(thumb.as_bytes()));
    let jwk = serde_json::json!({
        "kty": "RSA",
        "alg": "RS256",
        "use": "sig",
        "kid": kid,
        "n": n,
        "e": e,
        "d": b64_uint(d),
        "p": b64_uint(p),
        "q": b64_uint(q),
        "dp": b64_uint(&dp),
        "dq": b64_uint(&dq),
        "qi": b64_uint(&qi),
    });
    Ok(serde_json::json!({ "keys": [jwk] }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uint(v: &serde_json::Value, k: &str) -> BigUint {
        let s = v[k].as_str().unwrap_or_else(|| panic!("{k} missing"));
        BigUint::from_bytes_be(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .expect("base64url"),
        )
    }

    #[test]
    fn rsa_jwks_is_a_consistent_rs256_private_key() {
        let v: serde_json::Value =
            serde_json::from_str(&generate("jwks", &SecretKind::RsaJwks).unwrap()).unwrap();
        let keys = v["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        let k = &keys[0];
        assert_eq!(k["kty"], "RSA");
        assert_eq!(k["alg"], "RS256");
        assert_eq!(k["use"], "sig");
        assert!(k["kid"].as_str().is_some_and(|s| s.len() == 43));
        let (n, e, d, p, q) = (
            uint(k, "n"),
            uint(k, "e"),
            uint(k, "d"),
            uint(k, "p"),
            uint(k, "q"),
        );
        let one = BigUint::from(1u8);
        assert_eq!(&p * &q, n);
        assert_eq!(n.bits(), RSA_BITS);
        assert_eq!(uint(k, "dp"), &d % (&p - &one));
        assert_eq!(uint(k, "dq"), &d % (&q - &one));
        assert_eq!((uint(k, "qi") * &q) % &p, one);
        // Sign and verify with the textbook exponents: the parts belong together.
        let m = BigUint::from(0x1234_5678u32);
        assert_eq!(m.modpow(&d, &n).modpow(&e, &n), m);
    }

    #[test]
    fn rsa_jwks_differs_each_time() {
        let a = generate("a", &SecretKind::RsaJwks).unwrap();
        let b = generate("b", &SecretKind::RsaJwks).unwrap();
        assert_ne!(a, b);
    }
}
