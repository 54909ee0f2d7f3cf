//! Logto's admin-console account, made by provisioning so the console never has a
//! "first visitor becomes admin" window (security issue 14, point 2a).
//!
//! What a console sign-up writes, read from Logto 1.42's source and reproduced here:
//! `ProvisionLibrary.createUser` (packages/core/src/routes/experience/classes/libraries/
//! provision-library.ts) in the admin tenant, for the first user of the admin console
//! application, calls `insertUser` with the role names `user` (`AdminTenantRole.User`) and
//! `default:admin` (`defaultManagementApiAdminName`) plus every `is_default` User role of
//! the tenant, each as a `users_roles` row with a 21-character id; then
//! `provisionForFirstAdminUser` adds the user to organization `t-default` with organization
//! role `admin`, and turns the admin tenant's sign-in experience to `SignIn` (no more
//! sign-ups). The user row holds username, an Argon2i hash in Logto's own encoding
//! (`workers/tasks/argon2i.ts`: 16-byte salt, t=8, m=8 MiB, p=1, 32-byte hash, PHC
//! string), `password_updated_at`, and `logto_config = {"mfa":{"enabled":false}}`.
//!
//! The secrets store is the truth for the password: a stored hash that does not verify
//! against it (a rotation, or a change made in the console) is replaced.

use super::provision::{sql, ProvisionError};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use tokio_postgres::GenericClient;

/// Logto's admin tenant (the console's users live there).
const ADMIN_TENANT: &str = "admin";
/// Username of the account.
pub const ADMIN_USERNAME: &str = "admin";
/// Secret holding its password.
pub const ADMIN_PASSWORD_SECRET: &str = "logto-admin-password";
/// The password's kind: 18 random bytes, 24 URL-safe characters.
pub fn password_kind() -> crate::plan::SecretKind {
    crate::plan::SecretKind::Random { bytes: 18 }
}
/// Roles a first console sign-up gets by name (plus the tenant's default roles).
const ROLE_NAMES: [&str; 2] = ["user", "default:admin"];
/// The default tenant's organization in the admin tenant, and its admin role.
const TENANT_ORG: &str = "t-default";
const TENANT_ORG_ROLE: &str = "admin";

/// What `ensure_admin` did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AdminOutcome {
    /// The user row was inserted.
    pub created: bool,
    /// The stored hash was (re)written: created, rotated, or changed outside.
    pub password_set: bool,
    /// `users_roles` rows added.
    pub roles_added: u64,
    /// Organization membership or role rows added.
    pub org_rows_added: u64,
    /// The admin tenant's sign-in mode was turned to `SignIn`.
    pub sign_up_closed: bool,
}

/// Logto's id alphabet (`buildIdGenerator(n, false)`: digits and lowercase letters).
fn logto_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut buf = vec![0u8; len];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    // 256 % 36 = 4: a bias of under 2% on four letters, irrelevant for an identifier.
    buf.iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn argon2i() -> argon2::Argon2<'static> {
    let params = argon2::Params::new(8 * 1024, 8, 1, Some(32)).expect("valid argon2 parameters");
    argon2::Argon2::new(argon2::Algorithm::Argon2i, argon2::Version::V0x13, params)
}

/// The password hashed exactly as Logto's sign-up hashes it (`$argon2i$v=19$m=8192,t=8,p=1$…`).
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes fit a salt");
    argon2i()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2i with fixed, valid parameters")
        .to_string()
}

/// Whether `hash` (any Argon2 PHC string) verifies `password`.
pub fn verifies(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// The user's id, inserting the row when missing; sets the hash when it does not verify.
async fn ensure_user(
    db: &impl GenericClient,
    password: &str,
    out: &mut AdminOutcome,
) -> Result<String, ProvisionError> {
    let row = db
        .query_opt(
            "SELECT id::text, coalesce(password_encrypted, '')::text, \
             coalesce(password_encryption_method::text, '') FROM users \
             WHERE tenant_id = $1 AND username = $2 FOR UPDATE",
            &[&ADMIN_TENANT, &ADMIN_USERNAME],
        )
        .await
        .map_err(sql("reading Logto's admin user"))?;
    if let Some(r) = row {
        let (id, hash, method): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        if method != "Argon2i" || !verifies(&hash, password) {
            db.execute(
                "UPDATE users SET password_encrypted = $2, password_encryption_method = 'Argon2i', \
                 password_updated_at = now(), is_password_expired = false WHERE id = $1",
                &[&id, &hash_password(password)],
            )
            .await
            .map_err(sql("setting Logto's admin password"))?;
            out.password_set = true;
        }
        return Ok(id);
    }
    // `generateUserId`: 12 characters, retried on a collision (ids are global, not per tenant).
    let id = loop {
        let id = logto_id(12);
        let taken = db
            .query_opt("SELECT 1 FROM users WHERE id = $1", &[&id])
            .await
            .map_err(sql("choosing an id for Logto's admin user"))?;
        if taken.is_none() {
            break id;
        }
    };
    db.execute(
        "INSERT INTO users (tenant_id, id, username, password_encrypted, \
         password_encryption_method, logto_config, password_updated_at, is_password_expired) \
         VALUES ($1, $2, $3, $4, 'Argon2i', '{\"mfa\": {\"enabled\": false}}'::jsonb, now(), false)",
        &[&ADMIN_TENANT, &id, &ADMIN_USERNAME, &hash_password(password)],
    )
    .await
    .map_err(sql("creating Logto's admin user"))?;
    out.created = true;
    out.password_set = true;
    Ok(id)
}

/// `users_roles` for the named roles and the tenant's default User roles.
async fn ensure_roles(
    db: &impl GenericClient,
    user: &str,
    seed: &str,
) -> Result<u64, ProvisionError> {
    let names: Vec<String> = ROLE_NAMES.iter().map(|s| s.to_string()).collect();
    let roles = db
        .query(
            "SELECT id::text, name::text FROM roles WHERE tenant_id = $1 \
             AND (name = ANY($2) OR (is_default AND type = 'User'))",
            &[&ADMIN_TENANT, &names],
        )
        .await
        .map_err(sql("reading the admin tenant's roles"))?;
    for want in ROLE_NAMES {
        if !roles.iter().any(|r| r.get::<_, String>(1) == want) {
            return Err(ProvisionError::Schema {
                missing: format!("no role {want:?} in Logto's admin tenant"),
                seed: seed.into(),
            });
        }
    }
    let mut added = 0;
    for r in &roles {
        let role: String = r.get(0);
        added += db
            .execute(
                "INSERT INTO users_roles (tenant_id, id, user_id, role_id) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant_id, user_id, role_id) DO NOTHING",
                &[&ADMIN_TENANT, &logto_id(21), &user, &role],
            )
            .await
            .map_err(sql("giving Logto's admin user its roles"))?;
    }
    Ok(added)
}

/// Membership of organization `t-default` with its `admin` organization role.
async fn ensure_org(
    db: &impl GenericClient,
    user: &str,
    seed: &str,
) -> Result<u64, ProvisionError> {
    let present = db
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM organizations WHERE tenant_id = $1 AND id = $2) \
             AND EXISTS (SELECT 1 FROM organization_roles WHERE tenant_id = $1 AND id = $3)",
            &[&ADMIN_TENANT, &TENANT_ORG, &TENANT_ORG_ROLE],
        )
        .await
        .map_err(sql("reading the default tenant's organization"))?;
    if !present.get::<_, bool>(0) {
        return Err(ProvisionError::Schema {
            missing: format!(
                "no organization {TENANT_ORG:?} with role {TENANT_ORG_ROLE:?} in Logto's admin tenant"
            ),
            seed: seed.into(),
        });
    }
    let mut added = db
        .execute(
            "INSERT INTO organization_user_relations (tenant_id, organization_id, user_id) \
             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&ADMIN_TENANT, &TENANT_ORG, &user],
        )
        .await
        .map_err(sql("adding Logto's admin user to the default tenant"))?;
    added += db
        .execute(
            "INSERT INTO organization_role_user_relations \
             (tenant_id, organization_id, organization_role_id, user_id) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &[&ADMIN_TENANT, &TENANT_ORG, &TENANT_ORG_ROLE, &user],
        )
        .await
        .map_err(sql("making Logto's admin user admin of the default tenant"))?;
    Ok(added)
}

/// Creates or corrects the admin account (inside the caller's transaction).
pub async fn ensure_admin(
    db: &impl GenericClient,
    password: &str,
    seed: &str,
) -> Result<AdminOutcome, ProvisionError> {
    let mut out = AdminOutcome::default();
    let tables = db
        .query_one("SELECT to_regclass('users') IS NOT NULL", &[])
        .await
        .map_err(sql("looking for Logto's users table"))?;
    if !tables.get::<_, bool>(0) {
        return Err(ProvisionError::Schema {
            missing: "no table users".into(),
            seed: seed.into(),
        });
    }
    let user = ensure_user(db, password, &mut out).await?;
    out.roles_added = ensure_roles(db, &user, seed).await?;
    out.org_rows_added = ensure_org(db, &user, seed).await?;
    // What the first sign-up does next: the console takes no more sign-ups.
    out.sign_up_closed = db
        .execute(
            "UPDATE sign_in_experiences SET sign_in_mode = 'SignIn' \
             WHERE tenant_id = $1 AND sign_in_mode <> 'SignIn'",
            &[&ADMIN_TENANT],
        )
        .await
        .map_err(sql("closing sign-up on Logto's admin console"))?
        > 0;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_logto_argon2i_and_verify() {
        let h = hash_password("correct horse");
        assert!(h.starts_with("$argon2i$v=19$m=8192,t=8,p=1$"), "{h}");
        assert!(verifies(&h, "correct horse"));
        assert!(!verifies(&h, "wrong horse"));
        assert_ne!(h, hash_password("correct horse"), "salted");
        assert!(!verifies("not a hash", "x"));
    }

    #[test]
    fn ids_use_logtos_alphabet() {
        let id = logto_id(21);
        assert_eq!(id.len(), 21);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
    }
}
