//! `NAME-init`: one role + database per consumer, CONNECT only to its own database, the
//! extensions in each; and the rotate tasks that change a role's password in place.
//!
//! Every step reads the current state first and changes only what differs, so a second
//! run changes nothing (not even a password hash's salt).

use super::client::{connect, connect_superuser};
use super::error::extension_package;
use super::{PgConfig, PgError, PgServer, SUPERUSER};
use crate::plan::{SecretKind, TaskContext};
use crate::secrets::rotate::pending_name;
use std::time::Duration;
use tokio_postgres::Client;

/// Waits this long for the server when a task starts right after a restart.
const PATIENCE: Duration = Duration::from_secs(10);

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A SCRAM-SHA-256 verifier: the plain password never travels in SQL text (and so never
/// lands in a server log with log_statement = all).
fn verifier(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

async fn exec(c: &Client, db: &str, sql: &str) -> Result<(), PgError> {
    c.batch_execute(sql).await.map_err(|e| PgError::Sql {
        db: db.into(),
        sql: redact(sql),
        source: e,
    })
}

async fn exists(
    c: &Client,
    db: &str,
    sql: &str,
    arg: &(dyn tokio_postgres::types::ToSql + Sync),
) -> Result<bool, PgError> {
    c.query_opt(sql, &[arg])
        .await
        .map(|r| r.is_some())
        .map_err(|e| PgError::Sql {
            db: db.into(),
            sql: sql.into(),
            source: e,
        })
}

/// SQL for error messages, without the password verifier.
fn redact(sql: &str) -> String {
    match sql.find("PASSWORD") {
        Some(i) => format!("{}PASSWORD …", &sql[..i]),
        None => sql.into(),
    }
}

/// What one step changed, in words for the unit's log.
type Changes = Vec<String>;

/// The server's major version (`server_version_num` / 10000), for messages.
async fn server_major(su: &Client) -> Result<String, PgError> {
    let sql = "SELECT current_setting('server_version_num')";
    let version: String = su
        .query_one(sql, &[])
        .await
        .map(|r| r.get(0))
        .map_err(|e| PgError::Sql {
            db: "postgres".into(),
            sql: sql.into(),
            source: e,
        })?;
    Ok(version
        .parse::<u32>()
        .map(|n| (n / 10000).to_string())
        .unwrap_or(version))
}

/// Every wanted extension must be installable: fail before creating anything half-way.
async fn check_extensions(cfg: &PgConfig, su: &Client) -> Result<(), PgError> {
    let major = server_major(su).await?;
    for ext in &cfg.extensions {
        let sql = "SELECT 1 FROM pg_available_extensions WHERE name = $1";
        if !exists(su, "postgres", sql, ext).await? {
            return Err(PgError::MissingExtension {
                unit: cfg.server.unit.clone(),
                ext: ext.clone(),
                version: major.clone(),
                bin_dir: cfg.server.bin_dir.clone(),
                package: extension_package(ext, &major),
            });
        }
    }
    Ok(())
}

/// Whether Logto's seed still has to run in `db`: `logto db seed --swe` skips when
/// `logto_configs` exists (packages/cli/src/queries/logto-config.ts), so that table is
/// what tells a finished seed.
async fn seed_pending(
    srv: &PgServer,
    su: &Client,
    su_password: &str,
    db: &str,
) -> Result<bool, PgError> {
    if !exists(
        su,
        "postgres",
        "SELECT 1 FROM pg_database WHERE datname = $1",
        &db,
    )
    .await?
    {
        return Ok(true);
    }
    let c = connect_superuser(srv, su_password, db, PATIENCE).await?;
    let sql = "SELECT to_regclass('logto_configs') IS NULL";
    c.query_one(sql, &[])
        .await
        .map(|r| r.get(0))
        .map_err(|e| PgError::Sql {
            db: db.into(),
            sql: sql.into(),
            source: e,
        })
}

/// Whether the role owning `db` must hold CREATEROLE now: only a role listed for it
/// (Logto's), and only while its seed has not run: on PostgreSQL <= 15 CREATEROLE can
/// grant itself `pg_execute_server_program` (a shell as postgres) or any other role.
async fn wants_createrole(
    cfg: &PgConfig,
    su: &Client,
    su_password: &str,
    db: &str,
) -> Result<bool, PgError> {
    if !cfg.createrole.iter().any(|r| r == db) {
        return Ok(false);
    }
    seed_pending(&cfg.server, su, su_password, db).await
}

/// `rolcreaterole` of `role`; None when the role does not exist.
async fn has_createrole(su: &Client, role: &str) -> Result<Option<(bool, bool)>, PgError> {
    su.query_opt(
        "SELECT rolcanlogin, rolcreaterole FROM pg_roles WHERE rolname = $1",
        &[&role],
    )
    .await
    .map(|r| r.map(|r| (r.get(0), r.get(1))))
    .map_err(|e| PgError::Sql {
        db: "postgres".into(),
        sql: "SELECT … FROM pg_roles".into(),
        source: e,
    })
}

/// The role owning `db` exists with LOGIN and CREATEROLE as `createrole` says; returns
/// whether its password was set by this step (a new role).
async fn ensure_role(
    su: &Client,
    db: &str,
    createrole: bool,
    password: &str,
    changes: &mut Changes,
) -> Result<bool, PgError> {
    let role = quote_ident(db);
    let Some((login, cr)) = has_createrole(su, db).await? else {
        let sql = format!(
            "CREATE ROLE {role} LOGIN {} PASSWORD {}",
            if createrole { "CREATEROLE" } else { "" },
            quote_literal(&verifier(password))
        );
        exec(su, "postgres", &sql).await?;
        changes.push(format!("created role {db}"));
        return Ok(true);
    };
    if !login || cr != createrole {
        let attr = if createrole {
            "CREATEROLE"
        } else {
            "NOCREATEROLE"
        };
        exec(su, "postgres", &format!("ALTER ROLE {role} LOGIN {attr}")).await?;
        changes.push(match (cr == createrole, createrole) {
            (true, _) => format!("fixed attributes of role {db}"),
            (false, true) => format!("granted CREATEROLE to role {db} for Logto's seed"),
            (false, false) => format!("revoked CREATEROLE from role {db} (its seed is done)"),
        });
    }
    Ok(false)
}

/// After Logto's seed (`NAME-provision` runs this first): takes CREATEROLE back from
/// `role` once its database holds Logto's tables; returns whether it did.
pub async fn end_seed_createrole(
    srv: &PgServer,
    ctx: &TaskContext,
    role: &str,
) -> Result<bool, PgError> {
    let su_password = ctx.secrets.read(&srv.superuser_secret())?;
    let su = connect_superuser(srv, &su_password, "postgres", PATIENCE).await?;
    if !matches!(has_createrole(&su, role).await?, Some((_, true)))
        || seed_pending(srv, &su, &su_password, role).await?
    {
        return Ok(false);
    }
    let sql = format!("ALTER ROLE {} NOCREATEROLE", quote_ident(role));
    exec(&su, "postgres", &sql).await?;
    ctx.log(format!(
        "revoked CREATEROLE from role {role}: Logto's seed is done"
    ));
    Ok(true)
}

/// Database `db` exists and is owned by the role of the same name.
async fn ensure_database(su: &Client, db: &str, changes: &mut Changes) -> Result<(), PgError> {
    let role = quote_ident(db);
    let sql = "SELECT 1 FROM pg_database WHERE datname = $1";
    if !exists(su, "postgres", sql, &db).await? {
        exec(
            su,
            "postgres",
            &format!("CREATE DATABASE {role} OWNER {role}"),
        )
        .await?;
        changes.push(format!("created database {db}"));
        return Ok(());
    }
    let sql = "SELECT 1 FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba \
               WHERE d.datname = $1 AND r.rolname = d.datname";
    if !exists(su, "postgres", sql, &db).await? {
        let sql = format!("ALTER DATABASE {role} OWNER TO {role}");
        exec(su, "postgres", &sql).await?;
        changes.push(format!("gave database {db} to role {db}"));
    }
    Ok(())
}

/// PUBLIC may not CONNECT to `db`: other roles must not open it (CONNECT comes only from
/// ownership, or superuser for the maintenance database).
async fn revoke_public_connect(
    su: &Client,
    db: &str,
    changes: &mut Changes,
) -> Result<(), PgError> {
    let sql = "SELECT 1 WHERE has_database_privilege('public', $1, 'CONNECT')";
    if exists(su, "postgres", sql, &db).await? {
        let sql = format!(
            "REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC",
            quote_ident(db)
        );
        exec(su, "postgres", &sql).await?;
        changes.push(format!("revoked CONNECT on {db} from PUBLIC"));
    }
    Ok(())
}

/// The role's password matches the secrets store; checked by logging in, which keeps the
/// stored hash (and its salt) untouched.
async fn ensure_password(
    cfg: &PgConfig,
    su: &Client,
    db: &str,
    password: &str,
    changes: &mut Changes,
) -> Result<(), PgError> {
    if connect(cfg.server.port, db, password, db).await.is_ok() {
        return Ok(());
    }
    let sql = format!(
        "ALTER ROLE {} PASSWORD {}",
        quote_ident(db),
        quote_literal(&verifier(password))
    );
    exec(su, "postgres", &sql).await?;
    changes.push(format!("set password of role {db} from the secrets store"));
    Ok(())
}

/// The wanted extensions exist in `db` (created as the superuser).
async fn ensure_extensions(
    cfg: &PgConfig,
    su_password: &str,
    db: &str,
    changes: &mut Changes,
) -> Result<(), PgError> {
    if cfg.extensions.is_empty() {
        return Ok(());
    }
    let c = connect_superuser(&cfg.server, su_password, db, PATIENCE).await?;
    for ext in &cfg.extensions {
        let sql = "SELECT 1 FROM pg_extension WHERE extname = $1";
        if !exists(&c, db, sql, ext).await? {
            let sql = format!("CREATE EXTENSION IF NOT EXISTS {}", quote_ident(ext));
            exec(&c, db, &sql).await?;
            changes.push(format!("created extension {ext} in {db}"));
        }
    }
    Ok(())
}

/// Brings roles, databases, privileges and extensions to the wanted state; returns what
/// it changed (empty on a second run).
pub async fn provision(cfg: &PgConfig, ctx: &TaskContext) -> Result<Vec<String>, PgError> {
    let su_password = ctx.secrets.read(&cfg.superuser_secret())?;
    let su = connect_superuser(&cfg.server, &su_password, "postgres", PATIENCE).await?;
    check_extensions(cfg, &su).await?;
    let mut changes = Vec::new();
    for db in &cfg.databases {
        let password = ctx.secrets.ensure(
            &cfg.role_secret(db),
            &SecretKind::Random { bytes: 32 },
            None,
        )?;
        let createrole = wants_createrole(cfg, &su, &su_password, db).await?;
        let password_set = ensure_role(&su, db, createrole, &password, &mut changes).await?;
        ensure_database(&su, db, &mut changes).await?;
        revoke_public_connect(&su, db, &mut changes).await?;
        if !password_set {
            ensure_password(cfg, &su, db, &password, &mut changes).await?;
        }
        ensure_extensions(cfg, &su_password, db, &mut changes).await?;
    }
    // The maintenance database is for the superuser only.
    revoke_public_connect(&su, "postgres", &mut changes).await?;
    Ok(changes)
}

/// The `NAME-init` oneshot: provisions and logs what changed.
pub async fn init(cfg: &PgConfig, ctx: &TaskContext) -> Result<(), PgError> {
    let changes = provision(cfg, ctx).await?;
    if changes.is_empty() {
        ctx.log("roles, databases and extensions are up to date");
    }
    for c in changes {
        ctx.log(c);
    }
    Ok(())
}

/// Sets `role`'s password to the pending value of its secret (see `secrets::rotate`).
pub async fn rotate_role(srv: &PgServer, ctx: &TaskContext, role: &str) -> Result<(), PgError> {
    let secret = if role == SUPERUSER {
        srv.superuser_secret()
    } else {
        super::role_secret(&srv.unit, role)
    };
    let new = ctx.secrets.read(&pending_name(&secret))?;
    let su_password = ctx.secrets.read(&srv.superuser_secret())?;
    let su = connect_superuser(srv, &su_password, "postgres", PATIENCE).await?;
    match su
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
        .await
    {
        Ok(Some(_)) => {}
        // Not provisioned yet: NAME-init will create it with the new value.
        Ok(None) => return Ok(()),
        Err(e) => {
            return Err(PgError::Sql {
                db: "postgres".into(),
                sql: "SELECT 1 FROM pg_roles".into(),
                source: e,
            })
        }
    }
    let sql = format!(
        "ALTER ROLE {} PASSWORD {}",
        quote_ident(role),
        quote_literal(&verifier(&new))
    );
    exec(&su, "postgres", &sql).await?;
    ctx.log(format!("password of role {role} changed"));
    Ok(())
}
