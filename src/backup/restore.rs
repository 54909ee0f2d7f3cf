//! `restore FILE`: verifies the whole backup first (nothing is written from a damaged
//! one), then puts the config, secrets, internal CA and PostgreSQL cluster back into an
//! empty data dir, and the buckets and objects into the store through the S3 API.

use super::archive::{check, copy_out, read_entries};
use super::manifest::{Kind, Manifest};
use super::sources::{S3Source, DATA_FOLDERS};
use super::{objects, postgres, verify, BackupError};
use crate::stack::objects::s3::{S3Client, S3Credentials};
use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use tokio::runtime::Handle;

/// What to restore and where.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Target data dir (default: the backup's `[stack].data_dir`).
    pub data_dir: Option<PathBuf>,
    /// Where the config goes (default: its path at backup time, else DATA_DIR/stack.toml).
    pub config: Option<PathBuf>,
    /// Replace what the data dir holds.
    pub force: bool,
    /// Only the buckets and objects (the files went back in an earlier run).
    pub objects_only: bool,
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    pub manifest: Manifest,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    pub files: usize,
    pub objects: usize,
    /// Set when the store could not be reached: objects still to restore.
    pub objects_pending: Option<String>,
}

/// Restores `file` (blocking; `rt` runs the S3 requests).
pub fn restore(file: &Path, opts: &RestoreOptions, rt: &Handle) -> Result<Restored, BackupError> {
    println!("verifying {}", file.display());
    let manifest = verify::verify(file)?.manifest;
    let data_dir = opts.data_dir.clone().unwrap_or(manifest.data_dir.clone());
    let config =
        opts.config
            .clone()
            .unwrap_or_else(|| match (&opts.data_dir, &manifest.config_path) {
                (None, Some(p)) => p.clone(),
                _ => data_dir.join("stack.toml"),
            });
    if !opts.objects_only {
        prepare_target(&manifest, &data_dir, opts.force)?;
    }
    let kinds: HashMap<&str, &Kind> = manifest
        .entries
        .iter()
        .map(|e| (e.path.as_str(), &e.kind))
        .collect();
    let mut a = Applier {
        opts,
        pgdata: manifest.postgres.as_ref().map(|p| data_dir.join(&p.unit)),
        data_dir: &data_dir,
        config: &config,
        manifest: &manifest,
        rt,
        client: None,
        files: 0,
        objects: 0,
    };
    let (seen, again) = read_entries(file, |path, r| match kinds.get(path) {
        Some(kind) => a.entry(path, kind, r),
        None => Ok(()),
    })?;
    let (files, objs, pgdata) = (a.files, a.objects, a.pgdata.clone());
    let objects_pending = match a.client {
        Some(Err(reason)) if opts.objects_only => return Err(BackupError::Config(reason)),
        Some(Err(reason)) => Some(reason),
        _ => None,
    };
    // The file was verified before; a change since then is damage all the same.
    let problems = check(&seen, &again);
    if !problems.is_empty() {
        return Err(BackupError::Corrupt {
            file: file.display().to_string(),
            problems,
        });
    }
    if let (Some(pg), Some(root)) = (&manifest.postgres, &pgdata) {
        if !opts.objects_only {
            postgres::give_to(root, pg.user.as_deref(), pg.group.as_deref())?;
        }
    }
    Ok(Restored {
        manifest,
        data_dir,
        config,
        files,
        objects: objs,
        objects_pending,
    })
}

/// Puts each entry where it belongs; the store's client is made at the first bucket
/// (after the secrets, which come first in the archive, are back).
struct Applier<'a> {
    opts: &'a RestoreOptions,
    data_dir: &'a Path,
    config: &'a Path,
    pgdata: Option<PathBuf>,
    manifest: &'a Manifest,
    rt: &'a Handle,
    /// None: not tried yet; Err: the store does not answer (objects skipped).
    client: Option<Result<S3Client, String>>,
    files: usize,
    objects: usize,
}

impl Applier<'_> {
    fn entry(
        &mut self,
        path: &str,
        kind: &Kind,
        r: &mut dyn std::io::Read,
    ) -> Result<(), BackupError> {
        let files = !self.opts.objects_only;
        match kind {
            Kind::Config if files => {
                self.files += 1;
                write_config(self.config, path, r)
            }
            Kind::Data { rel, mode } if files => {
                self.files += 1;
                write_data(self.data_dir, path, rel, *mode, r)
            }
            Kind::Pg { rel, mode, dir } if files => {
                self.files += 1;
                let root = self.pgdata.as_deref().unwrap_or(self.data_dir);
                postgres::restore_entry(root, path, (rel, *mode, *dir), r)
            }
            Kind::Bucket { bucket } => match self.store() {
                Some(c) => objects::restore_bucket(&c, self.rt, bucket),
                None => Ok(()),
            },
            Kind::Object { bucket, key } => match self.store() {
                Some(c) => {
                    self.objects += 1;
                    let size = manifest_size(self.manifest, path);
                    objects::restore_object(&c, self.rt, path, (bucket, key), size, r)
                }
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    fn store(&mut self) -> Option<S3Client> {
        if self.client.is_none() {
            let endpoint = self
                .manifest
                .s3
                .as_ref()
                .map(|s| s.endpoint.as_str())
                .unwrap_or("");
            self.client = Some(store_client(self.data_dir, endpoint, self.rt));
        }
        self.client.as_ref().and_then(|c| c.as_ref().ok()).cloned()
    }
}

fn manifest_size(m: &Manifest, path: &str) -> u64 {
    m.entries
        .iter()
        .find(|e| e.path == path)
        .map(|e| e.size)
        .unwrap_or(0)
}

/// Refuses a non-empty data dir (unless `force`, which clears what a restore writes) and
/// a PostgreSQL major the installed server cannot load.
fn prepare_target(m: &Manifest, data_dir: &Path, force: bool) -> Result<(), BackupError> {
    let busy = std::fs::read_dir(data_dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if busy && !force {
        return Err(BackupError::NotEmpty {
            dir: data_dir.to_path_buf(),
        });
    }
    if let Some(pg) = &m.postgres {
        let installed =
            postgres::installed_major(pg).unwrap_or_else(|e| format!("not installed ({e})"));
        if installed != pg.major {
            return Err(BackupError::MajorMismatch {
                backup: pg.major.clone(),
                installed,
                server: pg.server(),
                setting: pg.setting_for(&pg.major),
            });
        }
    }
    if busy {
        let mut clear: Vec<PathBuf> = DATA_FOLDERS.iter().map(|f| data_dir.join(f)).collect();
        clear.extend(m.postgres.as_ref().map(|p| data_dir.join(&p.unit)));
        for p in clear {
            if p.exists() {
                std::fs::remove_dir_all(&p)
                    .map_err(BackupError::io(format!("removing {}", p.display())))?;
            }
        }
    }
    make_dir(data_dir, 0o755)
}

/// A client for the store with the restored root key, when it answers.
fn store_client(data_dir: &Path, endpoint: &str, rt: &Handle) -> Result<S3Client, String> {
    let secrets = crate::secrets::SecretStore::with_credentials(data_dir, None);
    let read = |n: &str| secrets.read(n).map_err(|e| format!("secret {n}: {e}"));
    let s3 = S3Source {
        unit: String::new(),
        endpoint: endpoint.to_string(),
        creds: S3Credentials {
            access_key: read(crate::stack::objects::ROOT_USER_SECRET)?,
            secret_key: read(crate::stack::objects::ROOT_PASSWORD_SECRET)?,
            region: crate::stack::objects::REGION.into(),
        },
    };
    let c = objects::client(&s3).map_err(|e| e.to_string())?;
    rt.block_on(objects::buckets(&c))
        .map_err(|e| format!("the object store at {endpoint} does not answer ({e})"))?;
    Ok(c)
}

fn write_config(target: &Path, entry: &str, r: &mut dyn std::io::Read) -> Result<(), BackupError> {
    if target.exists() {
        let keep = target.with_extension("toml.before-restore");
        std::fs::rename(target, &keep).map_err(BackupError::io(format!(
            "moving {} aside",
            target.display()
        )))?;
        println!("kept the config that was there as {}", keep.display());
    }
    if let Some(p) = target.parent() {
        std::fs::create_dir_all(p).map_err(BackupError::io(format!("creating {}", p.display())))?;
    }
    write_file(target, entry, 0o640, r)
}

fn write_data(
    root: &Path,
    entry: &str,
    rel: &str,
    mode: u32,
    r: &mut dyn std::io::Read,
) -> Result<(), BackupError> {
    let target = postgres::confined(root, rel).ok_or_else(|| BackupError::Damaged {
        file: String::new(),
        entry: entry.into(),
        reason: format!("unsafe path {rel:?}"),
    })?;
    if let Some(p) = target.parent() {
        make_dir(p, 0o700)?;
    }
    write_file(&target, entry, mode, r)
}

fn write_file(
    target: &Path,
    entry: &str,
    mode: u32,
    r: &mut dyn std::io::Read,
) -> Result<(), BackupError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o777)
        .custom_flags(libc::O_NOFOLLOW)
        .open(target)
        .map_err(BackupError::io(format!("creating {}", target.display())))?;
    copy_out(entry, r, &mut f, &format!("writing {}", target.display()))?;
    f.sync_all()
        .map_err(BackupError::io(format!("syncing {}", target.display())))
}

fn make_dir(d: &Path, mode: u32) -> Result<(), BackupError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(d)
        .map_err(BackupError::io(format!("creating {}", d.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::PgInfo;
    use std::os::unix::fs::PermissionsExt;

    /// A bin dir whose `postgres --version` says `version`.
    fn fake_bin(dir: &Path, version: &str) -> PathBuf {
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let p = bin.join("postgres");
        std::fs::write(
            &p,
            format!("#!/bin/sh\necho 'postgres (PostgreSQL) {version}'\n"),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin
    }

    fn manifest(bin_dir: PathBuf, major: &str) -> Manifest {
        Manifest {
            postgres: Some(PgInfo {
                unit: "postgres".into(),
                version: format!("{major}.1"),
                major: major.into(),
                user: None,
                bin_dir,
                image: None,
                group: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn another_major_is_refused_with_the_commands_that_would_move_it() {
        let t = tempfile::tempdir().unwrap();
        let bin = fake_bin(t.path(), "15.14");
        let target = t.path().join("data");
        let e = prepare_target(&manifest(bin.clone(), "18"), &target, false).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("PostgreSQL 18 data") && text.contains("is PostgreSQL 15"),
            "{text}"
        );
        assert!(
            text.contains("pg_dumpall") && text.contains("/usr/lib/postgresql/18/bin"),
            "{text}"
        );
        assert!(
            !target.exists(),
            "nothing is created before the checks pass"
        );
        prepare_target(&manifest(bin, "15"), &target, false).unwrap();
        assert!(target.is_dir());
    }

    #[test]
    fn a_non_empty_data_dir_needs_force_which_clears_only_what_restore_writes() {
        let t = tempfile::tempdir().unwrap();
        let bin = fake_bin(t.path(), "18.1");
        let target = t.path().join("data");
        std::fs::create_dir_all(target.join("secrets")).unwrap();
        std::fs::write(target.join("secrets/old"), "x").unwrap();
        std::fs::write(target.join("keep.txt"), "x").unwrap();
        let m = manifest(bin, "18");
        let e = prepare_target(&m, &target, false).unwrap_err().to_string();
        assert!(e.contains("not empty") && e.contains("--force"), "{e}");
        assert!(target.join("secrets/old").exists());
        prepare_target(&m, &target, true).unwrap();
        assert!(!target.join("secrets").exists());
        assert!(target.join("keep.txt").exists());
    }
}
