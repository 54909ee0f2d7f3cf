//! The `postgres` preset: a native PostgreSQL with initdb on first start, a `SELECT 1`
//! health probe, a `NAME-init` oneshot that provisions one role + database per consumer,
//! and the secrets behind them. Later presets get their connection URLs from here.

mod bin_dir;
mod client;
mod container;
mod datadir;
mod error;
mod provision;
mod switch;

use bin_dir::resolve_bin_dir;
pub use bin_dir::{bin_dir_major, newest_bin_dir};
pub use client::{error_text, open, probe};
pub use container::{pgvector_image, PgContainer, DEFAULT_IMAGE, DEFAULT_UID};
pub use datadir::{inspect_pid_file, prepare, PidFile};
pub use error::PgError;
pub use provision::{end_seed_createrole, init, rotate_role};

use crate::config::model::{Preset, ServiceSection};
use crate::config::Issue;
use crate::plan::{
    blank_unit, Condition, Dependency, Encoding, EnvValue, Exec, Health, PgRotate, Probe,
    RestartPolicy, SecretKind, SecretSpec, TaskSpec, UnitKind,
};
use crate::stack::{Expansion, PresetCtx};
use nix::sys::signal::Signal;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// Port when `port` is not set (above 1024, away from a distribution cluster on 5432).
pub const DEFAULT_PORT: u16 = 25432;
/// Extensions when `extensions` is not set (LobeChat needs pgvector).
pub const DEFAULT_EXTENSIONS: &[&str] = &["vector"];
/// Databases when `databases` is not set: one per consumer preset.
pub const DEFAULT_DATABASES: &[&str] = &["logto", "lobechat"];
/// Unix user of the server when the daemon runs as root.
pub const DEFAULT_USER: &str = "postgres";
/// Name of the database superuser created by initdb.
pub const SUPERUSER: &str = "postgres";
/// Where `bin_dir` is looked for when not set (Debian/Ubuntu layout).
pub const DEBIAN_PG_ROOT: &str = "/usr/lib/postgresql";

/// The server itself: what the prepare step and the health probe use (so a change to
/// the consumers' databases does not restart the server on reload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PgServer {
    /// The main unit's name (`services.NAME`).
    pub unit: String,
    pub bin_dir: PathBuf,
    pub port: u16,
    /// Unix user of the server; None = the daemon's own user (non-root daemons).
    pub user: Option<String>,
    /// DATA_DIR/NAME.
    pub data_dir: PathBuf,
    /// RUNTIME_DIR/NAME: the server's Unix socket folder.
    pub socket_dir: PathBuf,
    /// `runtime = "podman"`: the image and the numeric user the server runs as in it;
    /// None = native, from `bin_dir`.
    pub container: Option<Box<PgContainer>>,
}

impl PgServer {
    /// Secret holding the superuser's password.
    pub fn superuser_secret(&self) -> String {
        superuser_secret(&self.unit)
    }
    /// `BIN/name`.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }
    /// The program to run: `BIN/name` natively, `name` from the image's PATH in podman.
    pub fn program(&self, name: &str) -> String {
        match &self.container {
            Some(_) => name.to_string(),
            None => self.bin(name).display().to_string(),
        }
    }
    /// Which form runs the server: "process" or "podman" (recorded beside the data dir).
    pub fn form(&self) -> &'static str {
        if self.container.is_some() {
            "podman"
        } else {
            "process"
        }
    }
}

/// Everything the units and tasks of one postgres preset need, resolved from its section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PgConfig {
    pub server: PgServer,
    pub extensions: Vec<String>,
    /// `-c key=value` pairs after ours, in file order, pg_search preload merged in.
    pub settings: Vec<(String, String)>,
    pub databases: Vec<String>,
    /// Roles that get CREATEROLE (Logto's seed creates its own tenant role).
    pub createrole: Vec<String>,
}

impl PgConfig {
    /// Secret holding the superuser's password.
    pub fn superuser_secret(&self) -> String {
        self.server.superuser_secret()
    }
    /// Secret holding the password of the role owning `db`.
    pub fn role_secret(&self, db: &str) -> String {
        role_secret(&self.server.unit, db)
    }
    /// The server's argv.
    pub fn argv(&self) -> Vec<String> {
        let srv = &self.server;
        let mut argv = vec![
            srv.program("postgres"),
            "-D".into(),
            srv.data_dir.display().to_string(),
            "-c".into(),
            format!("port={}", srv.port),
            "-c".into(),
            "listen_addresses=127.0.0.1".into(),
            "-c".into(),
            format!("unix_socket_directories={}", srv.socket_dir.display()),
        ];
        for (k, v) in &self.settings {
            argv.push("-c".into());
            argv.push(format!("{k}={v}"));
        }
        argv
    }
}

/// Name of the superuser secret of the postgres unit `unit`.
pub fn superuser_secret(unit: &str) -> String {
    format!("{unit}-superuser")
}

/// Name of the secret of the role owning database `db` of the postgres unit `unit`.
pub fn role_secret(unit: &str, db: &str) -> String {
    format!("{unit}-{db}")
}

/// Name of the provisioning oneshot of the postgres unit `unit`.
pub fn init_name(unit: &str) -> String {
    format!("{unit}-init")
}

/// The provisioning oneshot of the config's postgres unit: consumers depend on it
/// (`completed`) so that their role, database and extensions exist before they start.
pub fn init_unit_name(ctx: &PresetCtx) -> Option<String> {
    ctx.find_preset(Preset::Postgres).map(|(n, _)| init_name(n))
}

/// The dependency edge a consumer of the database adds (`NAME-init` completed).
pub fn init_dependency(ctx: &PresetCtx) -> Option<Dependency> {
    init_unit_name(ctx).map(|unit| Dependency {
        unit,
        condition: Condition::Completed,
    })
}

/// `postgres://ROLE:${secret:NAME-ROLE}@127.0.0.1:PORT/DB` (password percent-encoded) for
/// the database `db` of the config's postgres unit; None when there is no postgres preset
/// or it does not list `db` in `databases`.
pub fn database_url(ctx: &PresetCtx, db: &str) -> Option<EnvValue> {
    let (name, section) = ctx.find_preset(Preset::Postgres)?;
    if !databases_of(section).iter().any(|d| d == db) {
        return None;
    }
    Some(
        EnvValue::text(format!("postgres://{db}:"))
            .push_secret(role_secret(name, db), Encoding::Url)
            .push_text(format!("@127.0.0.1:{}/{db}", port_of(section))),
    )
}

/// Logto's `DB_URL`: the same URL form; the role behind it is given CREATEROLE by
/// `NAME-init` while `logto db seed` has not run (it creates its own `logto_tenant_DB`
/// roles), and `NAME-provision` takes it back after the seed ([`seed_role_server`]).
pub fn logto_db_url(ctx: &PresetCtx, db: &str) -> Option<EnvValue> {
    database_url(ctx, db)
}

/// The config's postgres server when it grants `db`'s role CREATEROLE for a seed: the
/// consumer takes it back through [`end_seed_createrole`] once its seed completed.
pub fn seed_role_server(ctx: &PresetCtx, db: &str) -> Option<PgServer> {
    let (name, section) = ctx.find_preset(Preset::Postgres)?;
    let pg = PresetCtx {
        cfg: ctx.cfg,
        stack: ctx.stack,
        name,
        section,
        key: format!("services.{name}"),
        base_dir: ctx.base_dir,
    };
    // Issues are the postgres expansion's to report; here only the server matters.
    let (cfg, _) = resolve(&pg);
    cfg.createrole.iter().any(|r| r == db).then_some(cfg.server)
}

fn port_of(section: &ServiceSection) -> u16 {
    section.port.unwrap_or(DEFAULT_PORT)
}

fn databases_of(section: &ServiceSection) -> Vec<String> {
    section
        .databases
        .clone()
        .unwrap_or_else(|| DEFAULT_DATABASES.iter().map(|s| s.to_string()).collect())
}

/// A role/database/extension/setting name we can put in SQL and on the command line.
fn valid_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn setting_text(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(if *b { "on" } else { "off" }.into()),
        _ => None,
    }
}

/// `extensions`, each a valid identifier.
fn resolve_extensions(s: &ServiceSection, key: &str, issues: &mut Vec<Issue>) -> Vec<String> {
    let extensions = s
        .extensions
        .clone()
        .unwrap_or_else(|| DEFAULT_EXTENSIONS.iter().map(|s| s.to_string()).collect());
    for (i, e) in extensions.iter().enumerate() {
        if !valid_identifier(e) {
            issues.push(Issue::new(
                format!("{key}.extensions.{i}"),
                format!("{e:?} is not an extension name (lowercase letters, digits, '_')"),
            ));
        }
    }
    extensions
}

/// `databases`: consumer names, each once, none of the server's own.
fn resolve_databases(s: &ServiceSection, key: &str, issues: &mut Vec<Issue>) -> Vec<String> {
    let databases = databases_of(s);
    for (i, d) in databases.iter().enumerate() {
        if !valid_identifier(d) || d == "postgres" || d.starts_with("template") {
            issues.push(Issue::new(
                format!("{key}.databases.{i}"),
                format!("{d:?} cannot be a consumer database: use lowercase letters, digits and '_', not postgres/template*"),
            ));
        }
        if databases[..i].contains(d) {
            issues.push(Issue::new(
                format!("{key}.databases.{i}"),
                format!("database {d:?} is listed twice"),
            ));
        }
    }
    databases
}

/// One `settings.KEY`: Some((key, text)) when the operator may set it.
fn setting(
    key: &str,
    k: &str,
    v: &toml::Value,
    issues: &mut Vec<Issue>,
) -> Option<(String, String)> {
    let skey = format!("{key}.settings.{k}");
    if !k
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        issues.push(Issue::new(&skey, "not a PostgreSQL setting name"));
        return None;
    }
    match k {
        "port" => {
            issues.push(Issue::new(&skey, format!("set {key}.port instead")));
            return None;
        }
        "unix_socket_directories" | "data_directory" => {
            issues.push(Issue::new(
                &skey,
                "chosen by the preset (socket under the runtime dir, data under DATA_DIR)",
            ));
            return None;
        }
        _ => {}
    }
    match setting_text(v) {
        Some(t) => Some((k.to_string(), t)),
        None => {
            issues.push(Issue::new(
                &skey,
                "give a string, number or boolean (e.g. shared_buffers = \"1GB\")",
            ));
            None
        }
    }
}

/// `settings` in file order, with pg_search's preload merged in when it is wanted.
fn resolve_settings(
    s: &ServiceSection,
    key: &str,
    extensions: &[String],
    issues: &mut Vec<Issue>,
) -> Vec<(String, String)> {
    let mut settings: Vec<(String, String)> = s
        .settings
        .iter()
        .filter_map(|(k, v)| setting(key, k, v, issues))
        .collect();
    // ParadeDB pg_search must be preloaded (≥ 0.23); keep the operator's own libraries.
    if extensions.iter().any(|e| e == "pg_search") {
        match settings
            .iter_mut()
            .find(|(k, _)| k == "shared_preload_libraries")
        {
            Some((_, v)) => {
                if !v.split(',').any(|l| l.trim() == "pg_search") {
                    if v.trim().is_empty() {
                        *v = "pg_search".into();
                    } else {
                        v.push_str(",pg_search");
                    }
                }
            }
            None => settings.push(("shared_preload_libraries".into(), "pg_search".into())),
        }
    }
    settings
}

/// Resolves the section; problems are returned located by key.
pub fn resolve(ctx: &PresetCtx) -> (PgConfig, Vec<Issue>) {
    let s = ctx.section;
    let key = &ctx.key;
    let mut issues = Vec::new();
    let container = container::resolve(ctx, &mut issues);
    let bin_dir = match &container {
        // Only printed (e.g. in the missing-extension error): the binaries are the image's.
        Some(c) => PathBuf::from(format!("image {}", c.image)),
        None => resolve_bin_dir(ctx, &mut issues),
    };
    let extensions = resolve_extensions(s, key, &mut issues);
    let databases = resolve_databases(s, key, &mut issues);
    let settings = resolve_settings(s, key, &extensions, &mut issues);
    let user = match (&container, &s.user) {
        (Some(c), _) => Some(c.uid.to_string()),
        (None, Some(u)) => Some(u.clone()),
        (None, None) if nix::unistd::geteuid().is_root() => Some(DEFAULT_USER.into()),
        (None, None) => None,
    };
    // Logto's seed runs `create role logto_tenant_DB`: only that consumer needs CREATEROLE,
    // and only until its seed ran (`provision::wants_createrole`).
    let createrole =
        if ctx.find_preset(Preset::Logto).is_some() && databases.iter().any(|d| d == "logto") {
            vec!["logto".to_string()]
        } else {
            Vec::new()
        };
    let server = PgServer {
        unit: ctx.name.to_string(),
        bin_dir,
        port: port_of(s),
        user,
        data_dir: ctx.stack.data_dir.join(ctx.name),
        socket_dir: ctx.stack.runtime_dir.join(ctx.name),
        container,
    };
    let cfg = PgConfig {
        server,
        extensions,
        settings,
        databases,
        createrole,
    };
    (cfg, issues)
}

/// Expands `preset = "postgres"` into the server unit, `NAME-init` and the secrets.
pub fn expand(ctx: &PresetCtx) -> Expansion {
    let mut e = Expansion::default();
    let (cfg, mut issues) = resolve(ctx);
    e.issues.append(&mut issues);

    let mut main = blank_unit(ctx.name, &ctx.key, "preset postgres");
    main.kind = UnitKind::Longrun;
    main.exec = Exec::Command(cfg.argv());
    main.user = cfg.server.user.clone();
    if let Some(c) = &cfg.server.container {
        container::apply(&mut main, &cfg.server, c);
    }
    main.port = Some(cfg.server.port);
    // A database that stops on its own (pg_ctl stop, OOM) is always wanted back.
    main.restart = RestartPolicy::Always;
    // Fast shutdown: rolls back open transactions, checkpoints, exits; SIGKILL would
    // force crash recovery on the next start.
    main.stop_signal = Signal::SIGINT;
    main.stop_timeout = Duration::from_secs(120);
    main.prepare = Some(TaskSpec::PostgresInitDb(cfg.server.clone()));
    main.health = Some(Health {
        probe: Probe::Task(TaskSpec::PostgresReady(cfg.server.clone())),
        interval: Duration::from_secs(2),
        timeout: Duration::from_secs(5),
        retries: 3,
        // Crash recovery after a hard stop can replay a lot of WAL.
        start_period: Duration::from_secs(120),
    });

    let init = crate::stack::init_unit(
        &init_name(ctx.name),
        &ctx.key,
        "preset postgres",
        ctx.name,
        Exec::Task(TaskSpec::PostgresInit(Box::new(cfg.clone()))),
    );

    e.secrets.insert(
        cfg.superuser_secret(),
        SecretSpec {
            kind: SecretKind::Random { bytes: 32 },
            owner: None,
            consumers: Vec::new(),
            rotate: Some(rotate_task(&cfg, SUPERUSER)),
            description: format!(
                "password of the PostgreSQL superuser {SUPERUSER:?} of unit {}",
                cfg.server.unit
            ),
        },
    );
    for db in &cfg.databases {
        e.secrets.insert(
            cfg.role_secret(db),
            SecretSpec {
                kind: SecretKind::Random { bytes: 32 },
                owner: None,
                // Units embedding the URL are found from their env at rotation time.
                consumers: Vec::new(),
                rotate: Some(rotate_task(&cfg, db)),
                description: format!("password of PostgreSQL role {db:?} (database {db:?})"),
            },
        );
    }
    e.units.push(main);
    e.units.push(init);
    e
}

/// The rotate task of the secret behind `role` (the superuser or a consumer role).
fn rotate_task(cfg: &PgConfig, role: &str) -> TaskSpec {
    TaskSpec::PostgresRotate(PgRotate {
        server: cfg.server.clone(),
        role: role.to_string(),
    })
}
