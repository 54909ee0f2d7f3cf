//! The secrets store: DATA_DIR/secrets/NAME (0600), generated once, systemd credentials win.

mod generate;
pub mod rotate;

pub use generate::generate;

use crate::plan::SecretKind;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Errors of the secrets store; each names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {name:?} does not exist yet (expected {path}); it is created by the unit that provides it")]
    Missing { name: String, path: PathBuf },
    #[error("cannot read secret file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write secret file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret name {0:?} is invalid: use letters, digits, '-', '_' and '.'")]
    BadName(String),
    #[error("cannot generate secret {name:?}: {reason}")]
    Generate { name: String, reason: String },
}

/// Metadata shown by `secrets list` (never the value).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SecretInfo {
    pub name: String,
    /// Time since the value was last written.
    pub age_secs: u64,
    /// True when systemd's $CREDENTIALS_DIRECTORY provides it.
    pub from_credentials: bool,
}

/// Handle on the store; cheap to clone.
#[derive(Debug, Clone)]
pub struct SecretStore {
    dir: PathBuf,
    credentials: Option<PathBuf>,
}

impl SecretStore {
    /// The store under `data_dir/secrets`, with `$CREDENTIALS_DIRECTORY` when set.
    pub fn new(data_dir: &Path) -> Self {
        SecretStore {
            dir: data_dir.join("secrets"),
            credentials: std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
        }
    }

    /// A store with an explicit credentials directory (tests).
    pub fn with_credentials(data_dir: &Path, credentials: Option<PathBuf>) -> Self {
        SecretStore {
            dir: data_dir.join("secrets"),
            credentials,
        }
    }

    /// The folder holding the secret files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of a secret's file in the store.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn check_name(name: &str) -> Result<(), SecretError> {
        let ok = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if ok {
            Ok(())
        } else {
            Err(SecretError::BadName(name.into()))
        }
    }

    /// Current value: the systemd credential if present, else the store's file.
    pub fn read(&self, name: &str) -> Result<String, SecretError> {
        Self::check_name(name)?;
        if let Some(c) = &self.credentials {
            let p = c.join(name);
            if p.exists() {
                return read_trimmed(&p);
            }
        }
        let p = self.path(name);
        if !p.exists() {
            return Err(SecretError::Missing {
                name: name.into(),
                path: p,
            });
        }
        read_trimmed(&p)
    }

    /// Whether systemd's $CREDENTIALS_DIRECTORY provides this secret (it wins over the store).
    pub fn from_credentials(&self, name: &str) -> bool {
        Self::check_name(name).is_ok()
            && self
                .credentials
                .as_ref()
                .is_some_and(|c| c.join(name).exists())
    }

    /// Whether a value exists (credential or file).
    pub fn exists(&self, name: &str) -> bool {
        self.read(name).is_ok()
    }

    /// Returns the value, generating and storing it first when missing.
    pub fn ensure(
        &self,
        name: &str,
        kind: &SecretKind,
        owner: Option<(u32, u32)>,
    ) -> Result<String, SecretError> {
        match self.read(name) {
            Ok(v) => {
                if let Some(o) = owner {
                    self.chown(name, o)?;
                }
                Ok(v)
            }
            Err(SecretError::Missing { .. }) => {
                let v = generate(name, kind)?;
                self.write(name, &v, owner)?;
                Ok(v)
            }
            Err(e) => Err(e),
        }
    }

    /// Writes a value atomically (temp file + rename), mode 0600, owned by `owner`.
    pub fn write(
        &self,
        name: &str,
        value: &str,
        owner: Option<(u32, u32)>,
    ) -> Result<(), SecretError> {
        Self::check_name(name)?;
        let werr = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SecretError::Write { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(werr(&self.dir))?;
        let _ = std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o711));
        let final_path = self.path(name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(werr(&tmp))?;
        f.write_all(value.as_bytes()).map_err(werr(&tmp))?;
        f.sync_all().map_err(werr(&tmp))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&tmp, Some(uid), Some(gid)).map_err(werr(&tmp))?;
        }
        std::fs::rename(&tmp, &final_path).map_err(werr(&final_path))?;
        Ok(())
    }

    /// Gives the file to the user that must read it.
    pub fn chown(&self, name: &str, (uid, gid): (u32, u32)) -> Result<(), SecretError> {
        let p = self.path(name);
        if p.exists() {
            std::os::unix::fs::chown(&p, Some(uid), Some(gid))
                .map_err(|source| SecretError::Write { path: p, source })?;
        }
        Ok(())
    }

    /// Names and ages of every stored secret (credentials included).
    pub fn list(&self) -> Result<Vec<SecretInfo>, SecretError> {
        let mut out = Vec::new();
        let now = SystemTime::now();
        for (dir, from_credentials) in [(Some(&self.dir), false), (self.credentials.as_ref(), true)]
        {
            let Some(dir) = dir else { continue };
            let Ok(rd) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if name.starts_with('.') {
                    continue;
                }
                let age = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|m| now.duration_since(m).ok())
                    .unwrap_or(Duration::ZERO);
                out.retain(|i: &SecretInfo| i.name != name);
                out.push(SecretInfo {
                    name,
                    age_secs: age.as_secs(),
                    from_credentials,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

fn read_trimmed(p: &Path) -> Result<String, SecretError> {
    std::fs::read_to_string(p)
        .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
        .map_err(|source| SecretError::Read {
            path: p.to_path_buf(),
            source,
        })
}
