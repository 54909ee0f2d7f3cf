//! Environment values that may embed secrets, resolved only when a process is spawned.

use crate::secrets::{SecretError, SecretStore};
use serde::{Serialize, Serializer};
use std::fmt;

/// How a secret is embedded in a larger value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Raw,
    /// Percent-encoded for the userinfo part of a URL.
    Url,
}

/// A piece of an environment value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvPart {
    Text(String),
    Secret { name: String, encoding: Encoding },
}

/// An environment value: text with secret placeholders, shown as `${secret:NAME}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnvValue(pub Vec<EnvPart>);

impl EnvValue {
    /// Plain text.
    pub fn text(s: impl Into<String>) -> Self {
        EnvValue(vec![EnvPart::Text(s.into())])
    }
    /// The whole value of a secret.
    pub fn secret(name: impl Into<String>) -> Self {
        EnvValue(vec![EnvPart::Secret {
            name: name.into(),
            encoding: Encoding::Raw,
        }])
    }
    /// Appends text.
    pub fn push_text(mut self, s: impl Into<String>) -> Self {
        self.0.push(EnvPart::Text(s.into()));
        self
    }
    /// Appends a secret with an encoding.
    pub fn push_secret(mut self, name: impl Into<String>, encoding: Encoding) -> Self {
        self.0.push(EnvPart::Secret {
            name: name.into(),
            encoding,
        });
        self
    }
    /// Names of the secrets this value embeds.
    pub fn secret_names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            EnvPart::Secret { name, .. } => Some(name.as_str()),
            EnvPart::Text(_) => None,
        })
    }
    /// The value with secrets read from the store (never logged).
    pub fn resolve(&self, store: &SecretStore) -> Result<String, SecretError> {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                EnvPart::Text(t) => out.push_str(t),
                EnvPart::Secret { name, encoding } => {
                    let v = store.read(name)?;
                    match encoding {
                        Encoding::Raw => out.push_str(&v),
                        Encoding::Url => out.extend(percent_encoding::utf8_percent_encode(
                            &v,
                            percent_encoding::NON_ALPHANUMERIC,
                        )),
                    }
                }
            }
        }
        Ok(out)
    }
    /// The text, when no secret is embedded.
    pub fn as_text(&self) -> Option<String> {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                EnvPart::Text(t) => out.push_str(t),
                EnvPart::Secret { .. } => return None,
            }
        }
        Some(out)
    }
}

impl fmt::Display for EnvValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            match p {
                EnvPart::Text(t) => f.write_str(t)?,
                EnvPart::Secret { name, .. } => write!(f, "${{secret:{name}}}")?,
            }
        }
        Ok(())
    }
}

impl Serialize for EnvValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
