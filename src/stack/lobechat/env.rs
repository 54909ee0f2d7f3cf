//! LobeChat's environment for both editions (research §1.1): v2 "LobeHub" (Better Auth,
//! the default) and v1 (NextAuth, image lobe-chat-database).

use crate::config::model::ServiceSection;
use crate::config::Issue;
use crate::plan::EnvValue;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Which LobeChat generation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edition {
    /// NextAuth: `NEXT_AUTH_SECRET`, `NEXT_AUTH_SSO_PROVIDERS`, `NEXTAUTH_URL`.
    V1,
    /// Better Auth: `AUTH_SECRET`, `AUTH_SSO_PROVIDERS`, `JWKS_KEY`; refuses NextAuth keys.
    V2,
}

impl Edition {
    /// `edition = "v1" | "v2"` (default v2).
    pub fn parse(section: &ServiceSection, key: &str) -> Result<Edition, Issue> {
        match section.edition.as_deref() {
            None | Some("v2") => Ok(Edition::V2),
            Some("v1") => Ok(Edition::V1),
            Some(other) => Err(Issue::new(
                format!("{key}.edition"),
                format!("unknown edition {other:?}: use \"v2\" (LobeHub, Better Auth) or \"v1\" (NextAuth)"),
            )),
        }
    }
}

/// Logto as the SSO provider.
#[derive(Debug, Clone)]
pub struct Sso {
    pub client_id: String,
    pub client_secret: EnvValue,
    pub issuer: String,
}

/// What the env is derived from.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Public URL, no trailing slash.
    pub app_url: String,
    pub port: u16,
    pub database_url: Option<EnvValue>,
    pub sso: Option<Sso>,
    pub s3: BTreeMap<String, EnvValue>,
    /// Internal CA certificate (proxy tls = "internal").
    pub ca_bundle: Option<PathBuf>,
    pub key_vaults_secret: String,
    pub auth_secret: String,
    pub jwks_secret: String,
}

/// The full environment of the LobeChat unit.
pub fn build(edition: Edition, i: &Inputs) -> BTreeMap<String, EnvValue> {
    let mut env = BTreeMap::new();
    let mut set = |k: &str, v: EnvValue| {
        env.insert(k.to_string(), v);
    };
    set("APP_URL", EnvValue::text(&i.app_url));
    // Server-to-server calls (image generation, async tasks) skip the proxy.
    set(
        "INTERNAL_APP_URL",
        EnvValue::text(format!("http://127.0.0.1:{}", i.port)),
    );
    set("PORT", EnvValue::text(i.port.to_string()));
    // Loopback in both runtimes: containers share the host network (runtime::podman),
    // and only the proxy should reach LobeChat. Spelled `localhost`, not 127.0.0.1:
    // Next.js compares its own origin with the literal HOSTNAME but normalizes rewrite
    // targets to `localhost`, so with 127.0.0.1 every middleware rewrite (`/` ->
    // `/en-US__0`) behind our TLS proxy is proxied to https://localhost:PORT and fails
    // with EPROTO (found by the real LobeChat; vercel/next.js#94745). `ipv4first` (also
    // the image's) makes `localhost` bind 127.0.0.1, where the proxy and probe connect.
    set("HOSTNAME", EnvValue::text("localhost"));
    set(
        "NODE_OPTIONS",
        EnvValue::text("--dns-result-order=ipv4first --use-openssl-ca"),
    );
    set("NODE_ENV", EnvValue::text("production"));
    set("KEY_VAULTS_SECRET", EnvValue::secret(&i.key_vaults_secret));
    set("DATABASE_DRIVER", EnvValue::text("node"));
    if let Some(db) = &i.database_url {
        set("DATABASE_URL", db.clone());
    }
    match edition {
        Edition::V2 => {
            set("AUTH_SECRET", EnvValue::secret(&i.auth_secret));
            set("JWKS_KEY", EnvValue::secret(&i.jwks_secret));
            if i.sso.is_some() {
                set("AUTH_SSO_PROVIDERS", EnvValue::text("logto"));
            }
        }
        Edition::V1 => {
            set("NEXT_AUTH_SECRET", EnvValue::secret(&i.auth_secret));
            set(
                "NEXTAUTH_URL",
                EnvValue::text(format!("{}/api/auth", i.app_url)),
            );
            if i.sso.is_some() {
                set("NEXT_AUTH_SSO_PROVIDERS", EnvValue::text("logto"));
            }
        }
    }
    if let Some(sso) = &i.sso {
        set("AUTH_LOGTO_ID", EnvValue::text(&sso.client_id));
        set("AUTH_LOGTO_SECRET", sso.client_secret.clone());
        set("AUTH_LOGTO_ISSUER", EnvValue::text(&sso.issuer));
    }
    for (k, v) in &i.s3 {
        set(k, v.clone());
    }
    if let Some(ca) = &i.ca_bundle {
        set(
            "NODE_EXTRA_CA_CERTS",
            EnvValue::text(ca.display().to_string()),
        );
    }
    env
}

/// Whether v2 refuses to start with this variable set (scripts/_shared/checkDeprecatedAuth.js).
pub fn v2_rejects(var: &str) -> bool {
    var.starts_with("NEXT_AUTH")
        || var.starts_with("NEXTAUTH")
        || matches!(var, "AUTH_URL" | "ACCESS_CODE" | "NEXT_PUBLIC_SERVICE_MODE")
}

/// Problems in the operator's `env` overrides, each naming `services.NAME.env.KEY`.
pub fn check_overrides(edition: Edition, section: &ServiceSection, key: &str) -> Vec<Issue> {
    let mut out = Vec::new();
    for (var, value) in &section.env {
        let k = format!("{key}.env.{var}");
        if edition == Edition::V2 && v2_rejects(var) {
            out.push(Issue::new(
                k,
                format!("LobeChat v2 (Better Auth) refuses to start with {var} set: remove it (the preset derives APP_URL and AUTH_* itself) or set edition = \"v1\""),
            ));
        } else if var == "APP_URL" && value.ends_with('/') {
            out.push(Issue::new(k, "must not end with '/' (LobeChat refuses it)"));
        } else if var == "JWKS_KEY" && !value.contains("${secret:") {
            if let Err(why) = super::jwks::check(value) {
                out.push(Issue::new(k, format!("not a usable JWKS_KEY: {why}")));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Inputs {
        Inputs {
            app_url: "https://lobe.example.com".into(),
            port: 3210,
            database_url: Some(EnvValue::text("postgres://x")),
            sso: Some(Sso {
                client_id: "cid".into(),
                client_secret: EnvValue::secret("cs"),
                issuer: "https://auth.example.com/oidc".into(),
            }),
            s3: BTreeMap::new(),
            ca_bundle: Some("/pki/ca.crt".into()),
            key_vaults_secret: "kv".into(),
            auth_secret: "as".into(),
            jwks_secret: "jw".into(),
        }
    }

    #[test]
    fn v2_has_no_variable_it_rejects_and_v1_has_nextauth() {
        let v2 = build(Edition::V2, &inputs());
        assert!(v2.keys().all(|k| !v2_rejects(k)), "{v2:?}");
        assert_eq!(v2["AUTH_SSO_PROVIDERS"].to_string(), "logto");
        assert_eq!(v2["JWKS_KEY"].to_string(), "${secret:jw}");
        assert_eq!(v2["NODE_EXTRA_CA_CERTS"].to_string(), "/pki/ca.crt");
        // Not 127.0.0.1: Next.js then proxies its own rewrites (vercel/next.js#94745).
        assert_eq!(v2["HOSTNAME"].to_string(), "localhost");
        assert!(v2["NODE_OPTIONS"]
            .to_string()
            .contains("--dns-result-order=ipv4first"));
        let v1 = build(Edition::V1, &inputs());
        assert_eq!(
            v1["NEXTAUTH_URL"].to_string(),
            "https://lobe.example.com/api/auth"
        );
        assert_eq!(v1["NEXT_AUTH_SECRET"].to_string(), "${secret:as}");
        assert!(!v1.contains_key("AUTH_SECRET"));
    }

    #[test]
    fn overrides_v2_rejects_are_issues_naming_the_key() {
        let mut s = ServiceSection::default();
        s.env
            .insert("NEXTAUTH_URL".into(), "https://x/api/auth".into());
        s.env.insert("AUTH_URL".into(), "https://x".into());
        s.env.insert("APP_URL".into(), "https://x/".into());
        s.env.insert("JWKS_KEY".into(), "{}".into());
        let issues = check_overrides(Edition::V2, &s, "services.lobechat");
        let keys: Vec<_> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "services.lobechat.env.APP_URL",
                "services.lobechat.env.AUTH_URL",
                "services.lobechat.env.JWKS_KEY",
                "services.lobechat.env.NEXTAUTH_URL"
            ]
        );
        let v1 = check_overrides(Edition::V1, &s, "services.lobechat");
        assert_eq!(v1.len(), 2, "{v1:?}");
    }
}
