//! Keeps Logto's ports (3001 public, 3002 console) on 127.0.0.1 (security issue 14, 2b).
//!
//! Logto has no listen-address setting: `packages/core/src/app/init.ts` calls Koa's
//! `app.listen(port)`, which binds every interface, and podman units share the host's
//! network (`--network=host`), so both runtimes expose both ports. Only our proxy, on
//! the same host, should reach them.
//!
//! Choice: a Node preload given in `NODE_OPTIONS` (`--import=data:…`, no file to write or
//! mount) that makes a `listen()` without a host bind 127.0.0.1. It works the same for
//! the release run natively and for the image (whose `npm run start` passes
//! `NODE_OPTIONS` on to node), keeps the database and the health probe on the host's
//! loopback, and needs no privilege. The alternatives were heavier: a network namespace
//! for the native unit needs root, a veth and a forwarder so that the proxy and
//! PostgreSQL (both on the host's loopback) still meet Logto; podman's slirp4netns/pasta
//! with `-p 127.0.0.1:…` publishing would need `DB_URL` and the probe rewritten to the
//! host gateway, and would not cover the native runtime. A `listen()` that names a host
//! is left alone: Logto 1.42 names none.

use crate::plan::EnvValue;

/// The preload (an ES module): every `net.Server` listening without a host gets 127.0.0.1.
const PRELOAD: &str = r#"import net from "node:net";
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...a) {
  const port = typeof a[0] === "number" || (typeof a[0] === "string" && /^\d+$/.test(a[0]));
  if (port && typeof a[1] !== "string") a.splice(1, 0, "127.0.0.1");
  else if (a[0] && typeof a[0] === "object" && a[0].path === undefined && a[0].host === undefined && !(a[0] instanceof net.Server) && !("fd" in a[0]) && !("_handle" in a[0])) a[0] = { ...a[0], host: "127.0.0.1" };
  else if (a.length === 0 || typeof a[0] === "function") a.unshift(0, "127.0.0.1");
  return listen.apply(this, a);
};
"#;

/// The `NODE_OPTIONS` value: `--import=data:text/javascript,…` with the preload
/// percent-encoded (NODE_OPTIONS splits on spaces; a data URL is decoded by node).
pub fn node_options() -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    format!(
        "--import=data:text/javascript,{}",
        utf8_percent_encode(PRELOAD, NON_ALPHANUMERIC)
    )
}

/// The env value for the logto server unit.
pub fn env_value() -> EnvValue {
    EnvValue::text(node_options())
}

/// An operator's `env.NODE_OPTIONS` would replace the preload: refused, naming the key.
pub fn check_section(
    section: &crate::config::model::ServiceSection,
    key: &str,
) -> Option<crate::config::Issue> {
    section.env.contains_key("NODE_OPTIONS").then(|| {
        crate::config::Issue::new(
            format!("{key}.env.NODE_OPTIONS"),
            "set by the logto preset (its preload keeps Logto's ports 3001/3002 on 127.0.0.1); remove it",
        )
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_option_is_one_word_for_node_options() {
        let o = super::node_options();
        assert!(o.starts_with("--import=data:text/javascript,"));
        assert!(
            !o.contains(' ') && !o.contains('"') && !o.contains('\n'),
            "{o}"
        );
    }
}
