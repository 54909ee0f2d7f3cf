//! What a backup reads, resolved from the config: the config text, DATA_DIR's secrets and
//! internal CA, the postgres preset's server and the object store's endpoint and root key.

use super::BackupError;
use crate::config::model::Preset;
use crate::config::{ConfigFile, Source};
use crate::plan::{BuildOptions, StackInfo};
use crate::secrets::SecretStore;
use crate::stack::objects::{self, s3::S3Credentials};
use crate::stack::postgres::{self, PgServer};
use crate::stack::PresetCtx;
use std::path::PathBuf;

/// Folders of DATA_DIR a backup carries (relative), besides the services' own data.
pub const DATA_FOLDERS: &[&str] = &["secrets", "pki"];

/// The PostgreSQL server to take a base backup of.
#[derive(Debug, Clone)]
pub struct PgSource {
    pub server: PgServer,
    /// The superuser's password (secret `UNIT-superuser`).
    pub password: String,
}

/// The object store: loopback endpoint and root key.
#[derive(Debug, Clone)]
pub struct S3Source {
    /// `services.NAME` of the store.
    pub unit: String,
    pub endpoint: String,
    pub creds: S3Credentials,
}

/// Everything one backup reads.
#[derive(Debug, Clone)]
pub struct Sources {
    pub stack: StackInfo,
    /// Where the config was read from (None: the embedded default).
    pub config_path: Option<PathBuf>,
    pub config_text: String,
    pub postgres: Option<PgSource>,
    pub s3: Option<S3Source>,
    /// Images of the plan's podman units (recorded in the manifest).
    pub images: Vec<String>,
}

impl Sources {
    /// Resolves the sources of the config `cfg` read from `src`.
    pub fn resolve(cfg: &ConfigFile, src: &Source) -> Result<Sources, BackupError> {
        let plan = crate::plan::build(cfg, src, BuildOptions { check_host: false })
            .map_err(|e| BackupError::Config(e.to_string()))?;
        let secrets = SecretStore::new(&plan.stack.data_dir);
        let base = src.base_dir();
        let read = |name: &str| {
            secrets.read(name).map_err(|e| {
                BackupError::Config(format!(
                    "secret {name} (in {}): {e}; has the stack run once?",
                    secrets.dir().display()
                ))
            })
        };
        let postgres = match cfg
            .services
            .iter()
            .find(|(_, s)| s.preset == Some(Preset::Postgres) && s.enabled != Some(false))
        {
            Some((name, section)) => {
                let ctx = PresetCtx {
                    cfg,
                    stack: &plan.stack,
                    name,
                    section,
                    key: format!("services.{name}"),
                    base_dir: &base,
                };
                let (pg, _) = postgres::resolve(&ctx);
                let password = read(&pg.superuser_secret())?;
                Some(PgSource {
                    server: pg.server,
                    password,
                })
            }
            None => None,
        };
        let s3 = match objects::find_store(cfg) {
            Some((name, section, _)) => Some(S3Source {
                unit: name.to_string(),
                endpoint: format!(
                    "http://127.0.0.1:{}",
                    section.port.unwrap_or(objects::DEFAULT_PORT)
                ),
                creds: S3Credentials {
                    access_key: read(objects::ROOT_USER_SECRET)?,
                    secret_key: read(objects::ROOT_PASSWORD_SECRET)?,
                    region: objects::REGION.into(),
                },
            }),
            None => None,
        };
        Ok(Sources {
            stack: plan.stack.clone(),
            config_path: src.path.clone(),
            config_text: src.text.clone(),
            postgres,
            s3,
            images: crate::bundle::needed_images(&plan)
                .into_iter()
                .map(|(i, _)| i)
                .collect(),
        })
    }

    /// Resolves the sources of the config file at `path`.
    pub fn from_file(path: &std::path::Path) -> Result<Sources, BackupError> {
        let (cfg, src) =
            crate::config::load_file(path).map_err(|e| BackupError::Config(e.to_string()))?;
        Sources::resolve(&cfg, &src)
    }
}
