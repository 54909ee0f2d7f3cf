//! What Logto's own database needs beyond its seed, found by running the real Logto:
//!
//! - **CONNECT for the tenant roles.** Logto does not connect as the database owner: its
//!   seed creates `logto_tenant_DB` (a group, `NOLOGIN NOINHERIT`) and one login role per
//!   tenant (`logto_tenant_DB_default`, `logto_tenant_DB_admin`) inside it, and core
//!   connects as those. `postgres-init` lets only a database's owner CONNECT, so without
//!   a grant to the group Logto fails with "User does not have CONNECT privilege".
//! - **An email for every user.** LobeChat v2 (Better Auth) refuses an OIDC user without
//!   an `email` claim (`/auth-error?error=email_not_found`), and Logto's default sign-up
//!   asks for a username only. Logto can require an email at sign-up only with a
//!   verification code, which needs an email connector an air-gapped site does not have.
//!   So a trigger on Logto's `users` gives a user without one the address
//!   `USERNAME@user_email_domain` (default `users.invalid`: RFC 2606 reserves `.invalid`,
//!   so it can never reach or impersonate a real mailbox). A real address, set at
//!   sign-up through a connector or by an admin, is never overwritten.

use super::provision::{sql, ProvisionError, TENANT};
use crate::config::model::ServiceSection;
use crate::config::Issue;
use tokio_postgres::GenericClient;

/// Domain of the addresses given to users without one, unless configured.
pub const DEFAULT_USER_EMAIL_DOMAIN: &str = "users.invalid";
const FUNCTION: &str = "prometheus_stack_user_email";
/// PostgreSQL fires BEFORE triggers in name order; Logto's `set_tenant_id` fills
/// `tenant_id` for inserts made as a tenant role, so ours must sort after it.
const TRIGGER: &str = "zz_prometheus_stack_user_email";

/// A PostgreSQL identifier, quoted.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A PostgreSQL string literal (for a function body, where parameters cannot go).
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Grants CONNECT on the current database to Logto's tenant group; returns whether it
/// was missing. A Logto without tenant roles (none created by its seed) needs nothing.
pub async fn grant_tenant_connect(db: &impl GenericClient) -> Result<bool, ProvisionError> {
    let row = db
        .query_one(
            "SELECT current_database()::text, 'logto_tenant_' || current_database(), \
             EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'logto_tenant_' || current_database())",
            &[],
        )
        .await
        .map_err(sql("looking up Logto's tenant role"))?;
    let (database, role, exists): (String, String, bool) = (row.get(0), row.get(1), row.get(2));
    if !exists {
        return Ok(false);
    }
    let has: bool = db
        .query_one(
            "SELECT has_database_privilege($1, current_database(), 'CONNECT')",
            &[&role],
        )
        .await
        .map_err(sql("checking CONNECT of Logto's tenant role"))?
        .get(0);
    if has {
        return Ok(false);
    }
    db.batch_execute(&format!(
        "GRANT CONNECT ON DATABASE {} TO {}",
        ident(&database),
        ident(&role)
    ))
    .await
    .map_err(sql(
        "granting CONNECT on Logto's database to its tenant role (the database's owner must run it)",
    ))?;
    Ok(true)
}

/// The trigger function's body for `domain`.
fn function_body(domain: &str) -> String {
    format!(
        "\nBEGIN\n  IF NEW.tenant_id = {tenant} AND NEW.primary_email IS NULL AND NEW.username IS NOT NULL THEN\n    NEW.primary_email := NEW.username || '@' || {domain};\n  END IF;\n  RETURN NEW;\nEND\n",
        tenant = literal(TENANT),
        domain = literal(domain),
    )
}

/// Checks a configured `user_email_domain`: a DNS name, so `username@domain` is an address.
pub fn check_domain(domain: &str) -> Result<(), String> {
    let ok = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{domain:?} is not a domain name (letters, digits, '-', dot-separated)"
        ))
    }
}

/// The logto unit's `user_email_domain`, checked (an issue naming the key).
pub fn check_section(section: &ServiceSection, key: &str) -> Option<Issue> {
    let d = section.user_email_domain.as_deref()?;
    check_domain(d)
        .err()
        .map(|why| Issue::new(format!("{key}.user_email_domain"), why))
}

/// What `ensure_user_emails` did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EmailOutcome {
    /// The trigger was created or its domain changed.
    pub trigger_changed: bool,
    /// Existing users that were given an address.
    pub backfilled: u64,
}

/// Installs (or corrects) the trigger and gives existing users without an email one.
pub async fn ensure_user_emails(
    db: &impl GenericClient,
    domain: &str,
    seed: &str,
) -> Result<EmailOutcome, ProvisionError> {
    let body = function_body(domain);
    let current: Option<String> = db
        .query_opt(
            "SELECT p.prosrc FROM pg_proc p JOIN pg_trigger t ON t.tgfoid = p.oid \
             WHERE p.proname = $1 AND t.tgname = $2 AND t.tgrelid = 'users'::regclass",
            &[&FUNCTION, &TRIGGER],
        )
        .await
        .map_err(|source| match source.code() {
            // 'users'::regclass on a database the seed has not filled.
            Some(c) if *c == tokio_postgres::error::SqlState::UNDEFINED_TABLE => {
                ProvisionError::Schema {
                    missing: "no table users".into(),
                    seed: seed.into(),
                }
            }
            _ => ProvisionError::Sql {
                what: "reading the user-email trigger",
                source,
            },
        })?
        .map(|r| r.get(0));
    let trigger_changed = current.as_deref() != Some(body.as_str());
    if trigger_changed {
        db.batch_execute(&format!(
            "CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $fn${body}$fn$;\n\
             DROP TRIGGER IF EXISTS {TRIGGER} ON users;\n\
             CREATE TRIGGER {TRIGGER} BEFORE INSERT OR UPDATE OF username, primary_email ON users \
             FOR EACH ROW EXECUTE FUNCTION {FUNCTION}();"
        ))
        .await
        .map_err(sql("installing the user-email trigger on Logto's users table"))?;
    }
    let backfilled = db
        .execute(
            "UPDATE users SET primary_email = username || '@' || $1::text \
             WHERE tenant_id = $2 AND primary_email IS NULL AND username IS NOT NULL",
            &[&domain, &TENANT],
        )
        .await
        .map_err(sql(
            "giving existing Logto users without an email an address",
        ))?;
    Ok(EmailOutcome {
        trigger_changed,
        backfilled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(ident("lo\"gto"), "\"lo\"\"gto\"");
        assert_eq!(literal("a'b"), "'a''b'");
        assert!(function_body("x'y.test").contains("'x''y.test'"));
    }

    #[test]
    fn email_domains_are_checked() {
        check_domain("users.invalid").unwrap();
        check_domain("example.com").unwrap();
        for bad in ["", "a..b", "-a.b", "a b", "a@b", "a.b'"] {
            assert!(check_domain(bad).is_err(), "{bad:?}");
        }
    }
}
