//! Connections to the server (tokio-postgres over loopback TCP) and the `SELECT 1` probe.

use super::{PgError, PgServer, SUPERUSER};
use crate::plan::TaskContext;
use std::time::{Duration, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

/// How long one probe keeps retrying a server that is not accepting connections yet (the
/// supervisor sees no exit while a probe runs, so keep it short):
/// polling inside the probe makes readiness visible within ~10 ms, not one interval later.
const PROBE_PATIENCE: Duration = Duration::from_millis(1000);
const PROBE_POLL: Duration = Duration::from_millis(5);

/// Opens a connection, keeping tokio-postgres' own error (its SQLSTATE tells "wrong
/// password" from "not up yet"); the connection's driver runs on its own tokio task.
pub async fn open(
    port: u16,
    user: &str,
    password: &str,
    db: &str,
) -> Result<Client, tokio_postgres::Error> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host("127.0.0.1")
        .port(port)
        .user(user)
        .password(password)
        .dbname(db)
        .application_name("prometheus-stack")
        .connect_timeout(Duration::from_secs(5));
    let (client, conn) = cfg.connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// Opens a connection, naming port, role and database in the error.
pub async fn connect(port: u16, user: &str, password: &str, db: &str) -> Result<Client, PgError> {
    open(port, user, password, db)
        .await
        .map_err(|e| connect_error(e, port, user, db))
}

fn connect_error(e: tokio_postgres::Error, port: u16, user: &str, db: &str) -> PgError {
    PgError::Connect {
        port,
        user: user.into(),
        db: db.into(),
        source: e,
    }
}

/// The server's own message when there is one (tokio-postgres' Display is terse).
pub fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => crate::error_chain::error_chain(e),
    }
}

/// Whether a connect error means "not up yet" rather than "wrong".
fn transient(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(c) => *c == SqlState::CANNOT_CONNECT_NOW || *c == SqlState::TOO_MANY_CONNECTIONS,
        // Refused / reset while the postmaster binds its socket.
        None => true,
    }
}

fn is_auth_failure(e: &tokio_postgres::Error) -> bool {
    matches!(e.code(), Some(c) if *c == SqlState::INVALID_PASSWORD
        || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
}

/// Connects as the superuser, retrying while the server is starting, up to `patience`.
pub async fn connect_superuser(
    cfg: &PgServer,
    password: &str,
    db: &str,
    patience: Duration,
) -> Result<Client, PgError> {
    let deadline = Instant::now() + patience;
    loop {
        match open(cfg.port, SUPERUSER, password, db).await {
            Ok(client) => return Ok(client),
            Err(e) if is_auth_failure(&e) => {
                return Err(PgError::BadPassword {
                    port: cfg.port,
                    user: SUPERUSER.into(),
                    secret: cfg.superuser_secret(),
                })
            }
            Err(e) if transient(&e) && Instant::now() < deadline => {
                tokio::time::sleep(PROBE_POLL).await;
            }
            Err(e) => return Err(connect_error(e, cfg.port, SUPERUSER, db)),
        }
    }
}

/// One health check: a real login as the superuser and `SELECT 1`.
pub async fn probe(cfg: &PgServer, ctx: &TaskContext) -> Result<(), PgError> {
    let password = ctx.secrets.read(&cfg.superuser_secret())?;
    let client = connect_superuser(cfg, &password, "postgres", PROBE_PATIENCE).await?;
    let row = client
        .query_one("SELECT 1", &[])
        .await
        .map_err(|e| PgError::Sql {
            db: "postgres".into(),
            sql: "SELECT 1".into(),
            source: e,
        })?;
    let one: i32 = row.get(0);
    if one == 1 {
        Ok(())
    } else {
        Err(PgError::Unexpected {
            db: "postgres".into(),
            sql: "SELECT 1".into(),
            got: one.to_string(),
        })
    }
}
