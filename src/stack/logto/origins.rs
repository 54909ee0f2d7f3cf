//! Public origins derived from `[stack].domain`: auth.DOMAIN for Logto, lobe.DOMAIN for
//! LobeChat, with the proxy's port when it is not 443 (Logto matches Host *with* port).

use crate::config::model::{ConfigFile, ServiceSection};
use crate::config::Issue;
use crate::stack::common::https_origin;

/// Public host of a preset: its `host` key, else `PREFIX.DOMAIN`.
pub fn public_host(
    cfg: &ConfigFile,
    section: &ServiceSection,
    prefix: &str,
    key: &str,
) -> Result<String, Issue> {
    if let Some(h) = &section.host {
        return valid_host(h, &format!("{key}.host"));
    }
    match &cfg.stack.domain {
        Some(d) => valid_host(&format!("{prefix}.{d}"), "stack.domain"),
        None => Err(Issue::new(
            format!("{key}.host"),
            format!(
                "missing: set [stack] domain = \"example.com\" (this unit becomes {prefix}.example.com) or {key}.host"
            ),
        )),
    }
}

/// `https://` + [`public_host`] (+ the proxy's port): a preset's public origin.
pub fn public_origin(
    cfg: &ConfigFile,
    section: &ServiceSection,
    prefix: &str,
    key: &str,
) -> Result<String, Issue> {
    public_host(cfg, section, prefix, key).map(|h| https_origin(cfg, &h))
}

fn valid_host(h: &str, key: &str) -> Result<String, Issue> {
    let h = h.trim().to_ascii_lowercase();
    let ok = !h.is_empty()
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !h.starts_with('.')
        && !h.ends_with('.');
    if ok {
        Ok(h)
    } else {
        Err(Issue::new(
            key,
            format!("{h:?} is not a host name (write it without scheme, port or path)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> ConfigFile {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn host_from_domain_or_override() {
        let c = cfg("[stack]\ndomain = \"Example.COM\"\n");
        let s = ServiceSection::default();
        assert_eq!(
            public_host(&c, &s, "auth", "services.logto").unwrap(),
            "auth.example.com"
        );
        let s = ServiceSection {
            host: Some("login.example.org".into()),
            ..Default::default()
        };
        assert_eq!(
            public_host(&c, &s, "auth", "services.logto").unwrap(),
            "login.example.org"
        );
        let e =
            public_host(&cfg(""), &ServiceSection::default(), "lobe", "services.lc").unwrap_err();
        assert_eq!(e.key, "services.lc.host");
        let bad = ServiceSection {
            host: Some("https://x.org/".into()),
            ..Default::default()
        };
        assert!(public_host(&c, &bad, "auth", "services.l").is_err());
    }

    #[test]
    fn origin_carries_a_non_default_port() {
        assert_eq!(https_origin(&cfg(""), "a.b"), "https://a.b");
        assert_eq!(
            https_origin(&cfg("[proxy]\nhttps = \"0.0.0.0:443\"\n"), "a.b"),
            "https://a.b"
        );
        assert_eq!(
            https_origin(&cfg("[proxy]\nhttps = \"127.0.0.1:27443\"\n"), "a.b"),
            "https://a.b:27443"
        );
    }
}
