//! The `NAME-provision` oneshot: LobeChat's OIDC client in Logto, and the air-gap policy.
//!
//! Choice: direct SQL into Logto's own tables, in one transaction, rather than the
//! Management API after bootstrapping an M2M app by SQL. The API route needs SQL anyway
//! (Logto has no way to create the first M2M app, logto-io/logto#5202), then a running
//! Logto, a token whose `iss`/`aud` survive our proxy and endpoint settings (the very
//! thing that breaks in #6048/#8369), and a credential that lives on afterwards. SQL
//! runs before Logto starts (so Logto's client and sign-in-experience caches start
//! right), is atomic (a failure leaves nothing half-made), and is idempotent by
//! comparing rows before writing. The price is coupling to the table shapes; every
//! column used is checked first, and a mismatch fails with the missing column named.
//!
//! The application mirrors what the console creates for a "Traditional web" app:
//! `applications.secret` holds the client secret (oidc-provider checks it) and
//! `application_secrets` holds the same value as "Default secret" (what the console
//! lists, and what Logto's secret transpilation maps to `applications.secret`).

use super::admin::{self, AdminOutcome, ADMIN_PASSWORD_SECRET, ADMIN_USERNAME};
use super::tenant_db::{self, EmailOutcome};
use super::{LOBECHAT_CLIENT_ID, LOBECHAT_CLIENT_SECRET};
use crate::plan::{Condition, Dependency, EnvValue, Exec, SecretKind, TaskContext, TaskSpec, Unit};
use crate::stack::PresetCtx;
use serde::Serialize;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_postgres::{GenericClient, NoTls};

/// Logto's tenant for everything that is not its own admin console.
pub(super) const TENANT: &str = "default";
/// Name of the `application_secrets` row, as the console names the first secret.
const SECRET_NAME: &str = "Default secret";

/// Errors of provisioning; each says what to check.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("cannot connect to Logto's database (env DB_URL of unit {unit:?}): {source}")]
    Connect {
        unit: String,
        source: tokio_postgres::Error,
    },
    #[error("Logto's tables are not there or have an unexpected shape ({missing}); the {seed:?} unit (`logto db seed`) creates them — check it completed and that the Logto version is supported")]
    Schema { missing: String, seed: String },
    #[error("{what}: {source}")]
    Sql {
        what: &'static str,
        source: tokio_postgres::Error,
    },
    #[error("application {id:?} exists in Logto tenant {tenant:?}, not {TENANT:?}; delete it in the console or rename it")]
    WrongTenant { id: String, tenant: String },
    #[error("stored Logto metadata of {id:?} is not JSON: {source}")]
    Json {
        id: String,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    #[error("taking CREATEROLE back from Logto's role after its seed: {0}")]
    SeedRole(#[source] Box<crate::stack::postgres::PgError>),
}

pub(super) fn sql(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> ProvisionError {
    move |source| ProvisionError::Sql { what, source }
}

/// The OIDC client LobeChat signs in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSpec {
    pub id: String,
    /// Shown in the console; set on creation only (an operator may rename it).
    pub name: String,
    /// LobeChat's public URL, no trailing slash.
    pub app_url: String,
}

impl ClientSpec {
    /// LobeChat's client at `app_url`.
    pub fn lobechat(app_url: &str) -> Self {
        ClientSpec {
            id: LOBECHAT_CLIENT_ID.into(),
            name: "LobeChat".into(),
            app_url: app_url.trim_end_matches('/').to_string(),
        }
    }
    /// Where Logto sends the code: fixed by LobeChat (NextAuth and Better Auth alike).
    pub fn redirect_uri(&self) -> String {
        format!("{}/api/auth/callback/logto", self.app_url)
    }
}

/// What happened to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOutcome {
    Created,
    /// Fields that differed and were rewritten.
    Updated(Vec<&'static str>),
    Unchanged,
}

/// What one provisioning run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub client: Option<ClientOutcome>,
    /// Tenants whose pwned-password check was switched off by this run.
    pub pwned_check_disabled: u64,
    /// CONNECT on Logto's database was granted to its tenant roles by this run.
    pub tenant_connect_granted: bool,
    /// The trigger giving users without an email one (see `tenant_db`).
    pub emails: EmailOutcome,
    /// The admin-console account (see `admin`); None when not asked for.
    pub admin: Option<AdminOutcome>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.client {
            Some(ClientOutcome::Created) => write!(f, "OIDC client created")?,
            Some(ClientOutcome::Updated(w)) => write!(f, "OIDC client updated ({})", w.join(", "))?,
            Some(ClientOutcome::Unchanged) => write!(f, "OIDC client unchanged")?,
            None => write!(f, "no LobeChat unit, no OIDC client")?,
        }
        if self.tenant_connect_granted {
            write!(f, "; CONNECT granted to Logto's tenant roles")?;
        }
        if self.emails.trigger_changed {
            write!(f, "; user-email fallback installed")?;
        }
        if self.emails.backfilled > 0 {
            write!(
                f,
                "; {} existing user(s) given a fallback email",
                self.emails.backfilled
            )?;
        }
        if self.pwned_check_disabled > 0 {
            write!(
                f,
                "; pwned-password check turned off in {} tenant(s)",
                self.pwned_check_disabled
            )?;
        }
        if let Some(a) = &self.admin {
            write!(f, "; {}", admin_summary(a))?;
        }
        Ok(())
    }
}

/// One line on the admin account for the provisioning log.
fn admin_summary(a: &AdminOutcome) -> String {
    let mut s = match (a.created, a.password_set) {
        (true, _) => format!("Logto admin account {ADMIN_USERNAME:?} created"),
        (false, true) => format!("Logto admin password of {ADMIN_USERNAME:?} set from the store"),
        (false, false) => format!("Logto admin account {ADMIN_USERNAME:?} unchanged"),
    };
    if !a.created && a.roles_added + a.org_rows_added > 0 {
        s.push_str(" (roles restored)");
    }
    if a.sign_up_closed {
        s.push_str("; console sign-up closed");
    }
    s
}

/// Everything in one transaction: the client (when given), the admin-console account
/// (when given its password), the tenant roles' CONNECT, the user-email fallback for
/// `user_email_domain` and, air-gapped, the password policy.
pub async fn provision(
    db: &mut tokio_postgres::Client,
    client: Option<(&ClientSpec, &str)>,
    admin_password: Option<&str>,
    air_gapped: bool,
    user_email_domain: &str,
    seed_unit: &str,
) -> Result<Report, ProvisionError> {
    let tx = db.transaction().await.map_err(sql("BEGIN"))?;
    let client = match client {
        Some((spec, secret)) => Some(ensure_client(&tx, spec, secret, seed_unit).await?),
        None => None,
    };
    let admin = match admin_password {
        Some(pw) => Some(admin::ensure_admin(&tx, pw, seed_unit).await?),
        None => None,
    };
    let tenant_connect_granted = tenant_db::grant_tenant_connect(&tx).await?;
    let emails = tenant_db::ensure_user_emails(&tx, user_email_domain, seed_unit).await?;
    let pwned_check_disabled = if air_gapped {
        disable_pwned_check(&tx, seed_unit).await?
    } else {
        0
    };
    tx.commit().await.map_err(sql("COMMIT"))?;
    Ok(Report {
        client,
        pwned_check_disabled,
        tenant_connect_granted,
        emails,
        admin,
    })
}

async fn columns(db: &impl GenericClient, table: &str) -> Result<Vec<String>, ProvisionError> {
    let rows = db
        .query(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1",
            &[&table],
        )
        .await
        .map_err(sql("reading Logto's table columns"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

async fn require_columns(
    db: &impl GenericClient,
    table: &str,
    need: &[&str],
    seed: &str,
) -> Result<bool, ProvisionError> {
    let have = columns(db, table).await?;
    if have.is_empty() {
        return Ok(false);
    }
    let missing: Vec<_> = need
        .iter()
        .filter(|c| !have.iter().any(|h| h == *c))
        .map(|c| format!("{table}.{c}"))
        .collect();
    if missing.is_empty() {
        Ok(true)
    } else {
        Err(ProvisionError::Schema {
            missing: format!("missing column {}", missing.join(", ")),
            seed: seed.into(),
        })
    }
}

/// Checks the tables the client lives in; returns whether `application_secrets` exists
/// (older Logto versions have only `applications.secret`).
async fn client_tables(db: &impl GenericClient, seed: &str) -> Result<bool, ProvisionError> {
    let need = [
        "tenant_id",
        "id",
        "name",
        "secret",
        "type",
        "oidc_client_metadata",
        "custom_client_metadata",
    ];
    if !require_columns(db, "applications", &need, seed).await? {
        return Err(ProvisionError::Schema {
            missing: "no table applications".into(),
            seed: seed.into(),
        });
    }
    require_columns(
        db,
        "application_secrets",
        &["tenant_id", "application_id", "name", "value"],
        seed,
    )
    .await
}

/// A new "Traditional web" application, as the console would create it.
async fn insert_client(
    db: &impl GenericClient,
    spec: &ClientSpec,
    secret: &str,
) -> Result<ClientOutcome, ProvisionError> {
    let oidc =
        json!({"redirectUris": [spec.redirect_uri()], "postLogoutRedirectUris": [spec.app_url]});
    let custom = json!({"corsAllowedOrigins": [spec.app_url]});
    db.execute(
        "INSERT INTO applications (tenant_id, id, name, secret, description, type, \
         oidc_client_metadata, custom_client_metadata) \
         VALUES ($1, $2, $3, $4, $5, 'Traditional', $6::text::jsonb, $7::text::jsonb)",
        &[
            &TENANT,
            &spec.id,
            &spec.name,
            &secret,
            &"Created and kept in sync by prometheus-stack (logto-provision).",
            &oidc.to_string(),
            &custom.to_string(),
        ],
    )
    .await
    .map_err(sql("creating the LobeChat application"))?;
    Ok(ClientOutcome::Created)
}

/// Rewrites the fields of an existing application that differ from `spec`; other keys
/// (backchannel logout, token TTLs set in the console) are kept.
async fn update_client(
    db: &impl GenericClient,
    spec: &ClientSpec,
    secret: &str,
    row: tokio_postgres::Row,
) -> Result<ClientOutcome, ProvisionError> {
    let tenant: String = row.get(0);
    if tenant != TENANT {
        return Err(ProvisionError::WrongTenant {
            id: spec.id.clone(),
            tenant,
        });
    }
    let parse = |s: String| {
        serde_json::from_str::<Value>(&s).map_err(|source| ProvisionError::Json {
            id: spec.id.clone(),
            source,
        })
    };
    let kind: String = row.get(1);
    let old_secret: String = row.get(2);
    let mut oidc = parse(row.get(3))?;
    let mut custom = parse(row.get(4))?;
    let mut changed = Vec::new();
    if kind != "Traditional" {
        changed.push("type");
    }
    if old_secret != secret {
        changed.push("secret");
    }
    for (in_custom, field, want) in [
        (false, "redirectUris", json!([spec.redirect_uri()])),
        (false, "postLogoutRedirectUris", json!([spec.app_url])),
        (true, "corsAllowedOrigins", json!([spec.app_url])),
    ] {
        let obj = if in_custom { &mut custom } else { &mut oidc };
        if !obj.is_object() {
            *obj = json!({});
        }
        if obj.get(field) != Some(&want) {
            obj[field] = want;
            changed.push(field);
        }
    }
    if changed.is_empty() {
        return Ok(ClientOutcome::Unchanged);
    }
    db.execute(
        "UPDATE applications SET type = 'Traditional', secret = $2, \
         oidc_client_metadata = $3::text::jsonb, custom_client_metadata = $4::text::jsonb \
         WHERE id = $1",
        &[&spec.id, &secret, &oidc.to_string(), &custom.to_string()],
    )
    .await
    .map_err(sql("updating the LobeChat application"))?;
    Ok(ClientOutcome::Updated(changed))
}

/// The "Default secret" row holds the same value; returns whether it was written.
async fn sync_secret_row(
    db: &impl GenericClient,
    spec: &ClientSpec,
    secret: &str,
) -> Result<bool, ProvisionError> {
    let n = db
        .execute(
            "INSERT INTO application_secrets (tenant_id, application_id, name, value) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, application_id, name) \
             DO UPDATE SET value = EXCLUDED.value \
             WHERE application_secrets.value IS DISTINCT FROM EXCLUDED.value",
            &[&TENANT, &spec.id, &SECRET_NAME, &secret],
        )
        .await
        .map_err(sql("storing the LobeChat client secret"))?;
    Ok(n > 0)
}

/// Creates or corrects the client so it matches `spec` and `secret`; never a duplicate.
pub async fn ensure_client(
    db: &impl GenericClient,
    spec: &ClientSpec,
    secret: &str,
    seed: &str,
) -> Result<ClientOutcome, ProvisionError> {
    let has_secrets_table = client_tables(db, seed).await?;
    let row = db
        .query_opt(
            "SELECT tenant_id::text, type::text, secret::text, oidc_client_metadata::text, \
             custom_client_metadata::text FROM applications WHERE id = $1 FOR UPDATE",
            &[&spec.id],
        )
        .await
        .map_err(sql("reading the LobeChat application"))?;
    let outcome = match row {
        None => insert_client(db, spec, secret).await?,
        Some(r) => update_client(db, spec, secret, r).await?,
    };
    if has_secrets_table
        && sync_secret_row(db, spec, secret).await?
        && outcome == ClientOutcome::Unchanged
    {
        return Ok(ClientOutcome::Updated(vec!["application_secrets"]));
    }
    Ok(outcome)
}

/// Minimum password length once the breach check is off (air-gapped).
pub const AIR_GAPPED_MIN_PASSWORD: i32 = 12;

/// Air-gapped: new passwords must not be checked against api.pwnedpasswords.com (Logto's
/// default), and are at least `AIR_GAPPED_MIN_PASSWORD` long instead; done for every
/// tenant, the admin console's included. Returns rows changed.
pub async fn disable_pwned_check(
    db: &impl GenericClient,
    seed: &str,
) -> Result<u64, ProvisionError> {
    if !require_columns(db, "sign_in_experiences", &["password_policy"], seed).await? {
        return Err(ProvisionError::Schema {
            missing: "no table sign_in_experiences".into(),
            seed: seed.into(),
        });
    }
    // Without the breach check the policy must not get weaker: at least 12 characters
    // instead of Logto's 8 (an operator's longer minimum is kept).
    db.execute(
        "UPDATE sign_in_experiences SET password_policy = jsonb_set(jsonb_set(password_policy, '{rejects}', \
         coalesce(password_policy->'rejects', '{}'::jsonb) || '{\"pwned\": false}'::jsonb), '{length}', \
         coalesce(password_policy->'length', '{\"min\": 8, \"max\": 256}'::jsonb) || jsonb_build_object('min', \
         greatest(coalesce((password_policy->'length'->>'min')::int, 8), $1::int))) \
         WHERE coalesce(password_policy->'rejects'->'pwned', 'true'::jsonb) <> 'false'::jsonb \
         OR coalesce((password_policy->'length'->>'min')::int, 8) < $1::int",
        &[&AIR_GAPPED_MIN_PASSWORD],
    )
    .await
    .map_err(sql("turning off the pwned-password check"))
}

/// Everything one provisioning run takes from the config (secrets by name only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProvisionSpec {
    /// The logto unit, for messages.
    pub logto: String,
    /// Logto's `DB_URL` (the password as `${secret:NAME}`).
    pub db_url: EnvValue,
    /// The LobeChat unit whose OIDC client is kept in sync; None: no client.
    pub lobechat: Option<String>,
    /// LobeChat's public URL: its `env.APP_URL` when the operator set one, else derived.
    pub app_url: Option<String>,
    /// Turn off the pwned-password check (it calls out to the internet).
    pub air_gapped: bool,
    /// Domain of the fallback email given to users without one.
    pub user_email_domain: String,
    /// The seed unit, named when Logto's tables are missing.
    pub seed: String,
    /// The postgres server whose `logto` role holds CREATEROLE until the seed ran.
    pub seed_role: Option<Box<crate::stack::postgres::PgServer>>,
}

impl ProvisionSpec {
    /// The spec of the logto unit `ctx.name`, whose seed oneshot is `seed`.
    fn new(ctx: &PresetCtx, db_url: &EnvValue, lobechat: Option<&str>, seed: &str) -> Self {
        let section = lobechat.and_then(|n| ctx.cfg.services.get(n));
        // The LobeChat unit's APP_URL is the truth (an operator may have overridden it).
        let app_url = section.and_then(|s| {
            super::env_override(s, "APP_URL")
                .and_then(|v| v.as_text())
                .or_else(|| crate::stack::lobechat::app_url(ctx.cfg, s, "").ok())
        });
        ProvisionSpec {
            logto: ctx.name.to_string(),
            db_url: db_url.clone(),
            lobechat: lobechat.map(str::to_string),
            app_url,
            air_gapped: ctx.stack.air_gapped,
            user_email_domain: ctx
                .section
                .user_email_domain
                .clone()
                .unwrap_or_else(|| tenant_db::DEFAULT_USER_EMAIL_DOMAIN.into()),
            seed: seed.to_string(),
            seed_role: super::peers::seed_role_server(ctx).map(Box::new),
        }
    }
}

/// The provisioning unit for the logto unit `ctx.name`, and its task (also the client
/// secret's rotation step).
pub(super) fn unit(
    ctx: &PresetCtx,
    db_url: &EnvValue,
    lobechat: Option<&str>,
    seed: &str,
) -> (Unit, TaskSpec) {
    let task = TaskSpec::LogtoProvision(ProvisionSpec::new(ctx, db_url, lobechat, seed));
    let mut u = super::helper_oneshot(ctx, "provision", "OIDC provisioning");
    u.exec = Exec::Task(task.clone());
    u.depends_on.push(Dependency {
        unit: seed.to_string(),
        condition: Condition::Completed,
    });
    (u, task)
}

/// LobeChat's client secret: the value being rotated in when there is one (staged as
/// NAME.next until this task succeeds), else the stored one, made on first use.
fn client_secret(tc: &TaskContext) -> Result<String, ProvisionError> {
    let staged = crate::secrets::rotate::pending_name(LOBECHAT_CLIENT_SECRET);
    match tc.secrets.read(&staged) {
        Ok(v) => Ok(v),
        Err(_) => Ok(tc.secrets.ensure(
            LOBECHAT_CLIENT_SECRET,
            &SecretKind::Random { bytes: 32 },
            None,
        )?),
    }
}

/// The admin-console password, like `client_secret`: staged value first, else stored/made.
fn admin_password(tc: &TaskContext) -> Result<String, ProvisionError> {
    let staged = crate::secrets::rotate::pending_name(ADMIN_PASSWORD_SECRET);
    match tc.secrets.read(&staged) {
        Ok(v) => Ok(v),
        Err(_) => Ok(tc
            .secrets
            .ensure(ADMIN_PASSWORD_SECRET, &admin::password_kind(), None)?),
    }
}

/// One provisioning run as the `NAME-provision` unit (or `secrets rotate`) does it.
pub async fn run(spec: &ProvisionSpec, tc: &TaskContext) -> Result<Report, ProvisionError> {
    // First, whatever fails later: the seed completed, its CREATEROLE is no longer needed.
    if let Some(srv) = &spec.seed_role {
        crate::stack::postgres::end_seed_createrole(srv, tc, "logto")
            .await
            .map_err(|e| ProvisionError::SeedRole(Box::new(e)))?;
    }
    let url = spec.db_url.resolve(&tc.secrets)?;
    let client = match (&spec.lobechat, &spec.app_url) {
        (Some(_), Some(u)) => Some((ClientSpec::lobechat(u), client_secret(tc)?)),
        _ => None,
    };
    let password = admin_password(tc)?;
    let mut db = connect(&url, &spec.logto).await?;
    let report = provision(
        &mut db,
        client.as_ref().map(|(s, sec)| (s, sec.as_str())),
        Some(&password),
        spec.air_gapped,
        &spec.user_email_domain,
        &spec.seed,
    )
    .await?;
    tc.log(format!("{report}"));
    Ok(report)
}

/// Connects, retrying briefly: the database was just started by its own unit.
pub async fn connect(url: &str, unit: &str) -> Result<tokio_postgres::Client, ProvisionError> {
    let mut attempt = 0;
    loop {
        match tokio_postgres::connect(url, NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                return Ok(client);
            }
            // A server that answers (bad password, no such database) will not change its mind.
            Err(source) if attempt >= 10 || source.as_db_error().is_some() => {
                return Err(ProvisionError::Connect {
                    unit: unit.into(),
                    source,
                })
            }
            Err(_) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
