//! `backup [--to FILE]`: config, secrets, internal CA, the PostgreSQL cluster and every
//! object, streamed into `.NAME.partial-PID`, verified by reading it back, then renamed.

use super::archive::ArchiveWriter;
use super::manifest::{Kind, Manifest, S3Info, FORMAT};
use super::sources::{Sources, DATA_FOLDERS};
use super::{objects, postgres, verify, BackupError};
use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::runtime::Handle;

/// What was written.
#[derive(Debug)]
pub struct Created {
    pub path: PathBuf,
    pub manifest: Manifest,
    /// Size of the file (compressed).
    pub bytes: u64,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `prometheus-stack-YYYYMMDD-HHMMSS.tar.zst` (UTC) for a backup started at `unix`.
pub fn default_name(unix: u64) -> String {
    // From `list::utc`'s "YYYY-MM-DD HH:MM:SS UTC": one date formatter for both.
    let stamp: String = super::list::utc(unix)
        .trim_end_matches(" UTC")
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect();
    format!("prometheus-stack-{stamp}.tar.zst")
}

/// Writes a backup of `src` to `out`; on any error nothing is left at `out`. Blocking:
/// call from a blocking thread; `rt` runs the database and S3 requests.
pub fn create(src: &Sources, out: &Path, rt: &Handle) -> Result<Created, BackupError> {
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(BackupError::io(format!("creating {}", dir.display())))?;
    let fname = out
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup.tar.zst".into());
    // One backup at a time per folder (scheduled and by hand never overlap).
    let lock_path = dir.join(".backup.lock");
    let lock = File::create(&lock_path)
        .map_err(BackupError::io(format!("creating {}", lock_path.display())))?;
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|_| {
            BackupError::Config(format!(
                "another backup into {} is running (it holds {}); wait for it to finish",
                dir.display(),
                lock_path.display()
            ))
        })?;
    let tmp = dir.join(format!(".{fname}.partial-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let result = write(src, &tmp, rt).and_then(|m| {
        println!("verifying {}", tmp.display());
        verify::verify(&tmp).map(|_| m)
    });
    let manifest = match result {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let bytes = crate::publish::publish(&tmp, out).map_err(BackupError::io(format!(
        "renaming {} to {}",
        tmp.display(),
        out.display()
    )))?;
    Ok(Created {
        path: out.to_path_buf(),
        manifest,
        bytes,
    })
}

fn write(src: &Sources, tmp: &Path, rt: &Handle) -> Result<Manifest, BackupError> {
    let started_unix = now();
    let mut w = ArchiveWriter::create(tmp)?;
    let text = src.config_text.as_bytes();
    w.append(
        "config/stack.toml",
        text.len() as u64,
        0o600,
        Kind::Config,
        text,
    )?;
    for folder in DATA_FOLDERS {
        append_tree(&mut w, &src.stack.data_dir, Path::new(folder))?;
    }
    let pg = match &src.postgres {
        Some(pg) => {
            w.phase("postgres base backup", cluster_size(pg, rt));
            Some(postgres::backup(pg, &mut w)?)
        }
        None => None,
    };
    let s3 = match &src.s3 {
        Some(s3) => {
            let c = objects::client(s3)?;
            let (buckets, count, bytes) = objects::measure(&c, rt)?;
            w.phase(
                &format!("objects ({count} in {} buckets)", buckets.len()),
                bytes,
            );
            objects::backup(&c, rt, &buckets, &mut w)?;
            Some(S3Info {
                unit: s3.unit.clone(),
                endpoint: s3.endpoint.clone(),
            })
        }
        None => None,
    };
    let manifest = Manifest {
        format: FORMAT,
        created_by: format!("prometheus-stack {}", env!("CARGO_PKG_VERSION")),
        started_unix,
        finished_unix: now(),
        stack: src.stack.name.clone(),
        config_path: src.config_path.clone(),
        data_dir: src.stack.data_dir.clone(),
        s3,
        postgres: pg,
        images: src.images.clone(),
        entries: Vec::new(),
    };
    w.finish(manifest)
}

/// Bytes of every database (the progress total); 0 when it cannot be asked.
fn cluster_size(pg: &super::PgSource, rt: &Handle) -> u64 {
    let q = async {
        let c = crate::stack::postgres::open(
            pg.server.port,
            crate::stack::postgres::SUPERUSER,
            &pg.password,
            "postgres",
        )
        .await
        .ok()?;
        let row = c
            .query_one(
                "SELECT sum(pg_database_size(datname))::bigint FROM pg_database",
                &[],
            )
            .await
            .ok()?;
        row.get::<_, Option<i64>>(0)
    };
    rt.block_on(q).unwrap_or(0).max(0) as u64
}

/// Appends every regular file below `root/rel` as `data/REL` (links are skipped: the
/// stores never make them).
fn append_tree(w: &mut ArchiveWriter, root: &Path, rel: &Path) -> Result<(), BackupError> {
    let p = root.join(rel);
    let md = match std::fs::symlink_metadata(&p) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(BackupError::io(format!("reading {}", p.display()))(e)),
    };
    if md.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(&p)
            .map_err(BackupError::io(format!("reading {}", p.display())))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        names.sort();
        for n in names {
            append_tree(w, root, &rel.join(n))?;
        }
    } else if md.is_file() {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&p)
            .map_err(BackupError::io(format!("reading {}", p.display())))?;
        let fmd = f
            .metadata()
            .map_err(BackupError::io(format!("reading {}", p.display())))?;
        let rel = rel.to_string_lossy().into_owned();
        let mode = fmd.mode() & 0o7777;
        let kind = Kind::Data {
            rel: rel.clone(),
            mode,
        };
        w.append(&format!("data/{rel}"), fmd.len(), mode, kind, f)?;
    }
    Ok(())
}

#[cfg(test)]
mod name_tests {
    #[test]
    fn default_name_is_the_utc_time_without_separators() {
        // 2026-11-29 21:22:57 UTC
        assert_eq!(
            super::default_name(1_795_987_377),
            "prometheus-stack-20261129-212257.tar.zst"
        );
    }
}
