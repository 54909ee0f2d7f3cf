//! `NAME-init`: one role + database per consumer, CONNECT only to its own database, the
//! extensions in each; and the rotate tasks that change a role's password in place.
//!
//! Every step reads the current state first and changes only what differs, so a second
//! run changes nothing (not even a password hash's salt).

use super::client::{connect, connect_superuser, error_text};
use super::error::extension_package;
use super::{PgConfig, PgError, SUPERUSER};
use crate::plan::{SecretKind, Task, TaskContext};
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
        reason: error_text(&e),
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
            reason: error_text(&e),
        })
}

/// SQL for error messages, without the password verifier.
fn redact(sql: &str) -> String {
    match sql.find("PASSWORD") {
        Some(i) => format!("{}PASSWORD …", &sql[..i]),
        None => sql.into(),
    }
}

/// Brings roles, databases, privileges and extensions to the wanted state; returns what
/// it changed (empty on a second run).
pub async fn provision(cfg: &PgConfig, ctx: &TaskContext) -> Result<Vec<String>, PgError> {
    let su_password = ctx.secrets.read(&cfg.superuser_secret())?;
    let su = connect_superuser(cfg, &su_password, "postgres", PATIENCE).await?;
    let version: String = su
        .query_one("SELECT current_setting('server_version_num')", &[])
        .await
        .map(|r| r.get(0))
        .map_err(|e| PgError::Sql {
            db: "postgres".into(),
            sql: "SELECT current_setting('server_version_num')".into(),
            reason: error_text(&e),
        })?;
    let major = version
        .parse::<u32>()
        .map(|n| (n / 10000).to_string())
        .unwrap_or(version);

    let mut changes = Vec::new();
    // Extension availability first: fail before creating anything half-way.
    for ext in &cfg.extensions {
        if !exists(
            &su,
            "postgres",
            "SELECT 1 FROM pg_available_extensions WHERE name = $1",
            ext,
        )
        .await?
        {
            return Err(PgError::MissingExtension {
                unit: cfg.unit.clone(),
                ext: ext.clone(),
                version: major.clone(),
                bin_dir: cfg.bin_dir.clone(),
                package: extension_package(ext, &major),
            });
        }
    }

    for db in &cfg.databases {
        let password = ctx.secrets.ensure(
            &cfg.role_secret(db),
            &SecretKind::Random { bytes: 32 },
            None,
        )?;
        let role = quote_ident(db);
        let createrole = cfg.createrole.iter().any(|r| r == db);
        let attrs = su
            .query_opt(
                "SELECT rolcanlogin, rolcreaterole FROM pg_roles WHERE rolname = $1",
                &[db],
            )
            .await
            .map_err(|e| PgError::Sql {
                db: "postgres".into(),
                sql: "SELECT … FROM pg_roles".into(),
                reason: error_text(&e),
            })?;
        let mut password_set = false;
        match attrs {
            None => {
                let sql = format!(
                    "CREATE ROLE {role} LOGIN {} PASSWORD {}",
                    if createrole { "CREATEROLE" } else { "" },
                    quote_literal(&verifier(&password))
                );
                exec(&su, "postgres", &sql).await?;
                password_set = true;
                changes.push(format!("created role {db}"));
            }
            Some(r) => {
                let (login, cr): (bool, bool) = (r.get(0), r.get(1));
                if !login || cr != createrole {
                    let sql = format!(
                        "ALTER ROLE {role} LOGIN {}",
                        if createrole {
                            "CREATEROLE"
                        } else {
                            "NOCREATEROLE"
                        }
                    );
                    exec(&su, "postgres", &sql).await?;
                    changes.push(format!("fixed attributes of role {db}"));
                }
            }
        }
        if !exists(
            &su,
            "postgres",
            "SELECT 1 FROM pg_database WHERE datname = $1",
            db,
        )
        .await?
        {
            exec(
                &su,
                "postgres",
                &format!("CREATE DATABASE {role} OWNER {role}"),
            )
            .await?;
            changes.push(format!("created database {db}"));
        } else if !exists(
            &su,
            "postgres",
            "SELECT 1 FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba \
             WHERE d.datname = $1 AND r.rolname = d.datname",
            db,
        )
        .await?
        {
            exec(
                &su,
                "postgres",
                &format!("ALTER DATABASE {role} OWNER TO {role}"),
            )
            .await?;
            changes.push(format!("gave database {db} to role {db}"));
        }
        // Other roles must not open this database: CONNECT comes only from ownership.
        if exists(
            &su,
            "postgres",
            "SELECT 1 WHERE has_database_privilege('public', $1, 'CONNECT')",
            db,
        )
        .await?
        {
            exec(
                &su,
                "postgres",
                &format!("REVOKE CONNECT, TEMPORARY ON DATABASE {role} FROM PUBLIC"),
            )
            .await?;
            changes.push(format!("revoked CONNECT on {db} from PUBLIC"));
        }
        if !password_set {
            // Checking by logging in keeps the stored hash (and its salt) untouched.
            match connect(cfg.port, db, &password, db).await {
                Ok(_) => {}
                Err(_) => {
                    let sql = format!(
                        "ALTER ROLE {role} PASSWORD {}",
                        quote_literal(&verifier(&password))
                    );
                    exec(&su, "postgres", &sql).await?;
                    changes.push(format!("set password of role {db} from the secrets store"));
                }
            }
        }
        if !cfg.extensions.is_empty() {
            let c = connect_superuser(cfg, &su_password, db, PATIENCE).await?;
            for ext in &cfg.extensions {
                if !exists(&c, db, "SELECT 1 FROM pg_extension WHERE extname = $1", ext).await? {
                    exec(
                        &c,
                        db,
                        &format!("CREATE EXTENSION IF NOT EXISTS {}", quote_ident(ext)),
                    )
                    .await?;
                    changes.push(format!("created extension {ext} in {db}"));
                }
            }
        }
    }
    // The maintenance database is for the superuser only.
    if exists(
        &su,
        "postgres",
        "SELECT 1 WHERE has_database_privilege('public', $1, 'CONNECT')",
        &"postgres",
    )
    .await?
    {
        exec(
            &su,
            "postgres",
            "REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC",
        )
        .await?;
        changes.push("revoked CONNECT on postgres from PUBLIC".into());
    }
    Ok(changes)
}

/// The `NAME-init` oneshot.
pub fn init_task(cfg: &PgConfig) -> Task {
    let cfg = cfg.clone();
    Task::new(
        format!(
            "postgres init: roles+databases {:?}, extensions {:?}{}",
            cfg.databases,
            cfg.extensions,
            if cfg.createrole.is_empty() {
                String::new()
            } else {
                format!(", CREATEROLE for {:?}", cfg.createrole)
            }
        ),
        move |ctx| {
            let cfg = cfg.clone();
            async move {
                let changes = provision(&cfg, &ctx).await.map_err(|e| e.to_string())?;
                if changes.is_empty() {
                    ctx.log("roles, databases and extensions are up to date");
                }
                for c in changes {
                    ctx.log(c);
                }
                Ok(())
            }
        },
    )
}

/// Sets `role`'s password to the pending value of its secret (see `secrets::rotate`).
pub async fn rotate_role(cfg: &PgConfig, ctx: &TaskContext, role: &str) -> Result<(), PgError> {
    let secret = if role == SUPERUSER {
        cfg.superuser_secret()
    } else {
        cfg.role_secret(role)
    };
    let new = ctx.secrets.read(&pending_name(&secret))?;
    let su_password = ctx.secrets.read(&cfg.superuser_secret())?;
    let su = connect_superuser(cfg, &su_password, "postgres", PATIENCE).await?;
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
                reason: error_text(&e),
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

/// The rotate task of the secret behind `role` (the superuser or a consumer role).
pub fn rotate_task(cfg: &PgConfig, role: &str) -> Task {
    let cfg = cfg.clone();
    let role = role.to_string();
    Task::new(
        format!(
            "postgres rotate: ALTER ROLE {role} on 127.0.0.1:{}",
            cfg.port
        ),
        move |ctx| {
            let cfg = cfg.clone();
            let role = role.clone();
            async move {
                rotate_role(&cfg, &ctx, &role)
                    .await
                    .map_err(|e| e.to_string())
            }
        },
    )
}
