//! The data dir before each start: initdb once (atomically), ownership, and the
//! `postmaster.pid` left by a crash — removed when stale, never when a live server owns it.

use super::{PgError, PgServer, SUPERUSER};
use crate::plan::{SecretKind, TaskContext};
use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The unit's Unix user, resolved.
#[derive(Debug, Clone)]
pub struct UnitUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PgError {
    let path = path.to_path_buf();
    move |source| PgError::Io { what, path, source }
}

/// Resolves `user`; None when the server runs as the daemon's own user. In podman the
/// image's numeric uid/gid, which need no name on the host.
pub fn unit_user(cfg: &PgServer) -> Result<Option<UnitUser>, PgError> {
    if let Some(c) = &cfg.container {
        return Ok(Some(UnitUser {
            name: format!("uid {}", c.uid),
            uid: c.uid,
            gid: c.gid,
        }));
    }
    let Some(name) = &cfg.user else {
        return Ok(None);
    };
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Ok(Some(UnitUser {
            name: name.clone(),
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        })),
        _ => Err(PgError::NoUser {
            unit: cfg.unit.clone(),
            user: name.clone(),
        }),
    }
}

/// Every folder above `path` must let `user` in (a 0700 root-owned parent blocks it).
fn check_reachable(cfg: &PgServer, user: &UnitUser, path: &Path) -> Result<(), PgError> {
    for dir in path.ancestors().skip(1) {
        if dir.as_os_str().is_empty() {
            continue;
        }
        let Ok(md) = std::fs::metadata(dir) else {
            continue;
        };
        let mode = md.mode() & 0o7777;
        let bit = if md.uid() == user.uid {
            0o100
        } else if md.gid() == user.gid {
            0o010
        } else {
            0o001
        };
        if mode & bit == 0 {
            return Err(PgError::Unreachable {
                unit: cfg.unit.clone(),
                user: user.name.clone(),
                path: path.to_path_buf(),
                blocker: dir.to_path_buf(),
                mode,
                owner: md.uid(),
            });
        }
    }
    Ok(())
}

/// Opens `path` without following a symlink at its last component (`O_NOFOLLOW`), and
/// without blocking on a planted FIFO; the unit's user owns the data tree, so root must
/// never act on whatever a link there points to.
fn open_nofollow(path: &Path, dir: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut flags = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
    if dir {
        flags |= libc::O_DIRECTORY;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
}

/// Why `path` is refused, when it is a link or not a plain file (None: a plain file).
fn not_plain_file(err: &std::io::Error) -> Option<&'static str> {
    (err.raw_os_error() == Some(libc::ELOOP)).then_some("is a symbolic link")
}

/// Reads at most `max` bytes of the plain file `path` (never through a symlink).
fn read_plain(path: &Path, max: u64) -> Result<String, PgError> {
    use std::io::Read;
    let refuse = |why: &'static str| PgError::Unsafe {
        path: path.to_path_buf(),
        why,
    };
    let f = open_nofollow(path, false).map_err(|e| match not_plain_file(&e) {
        Some(why) => refuse(why),
        None => io("cannot read", path)(e),
    })?;
    let md = f.metadata().map_err(io("cannot stat", path))?;
    if !md.is_file() {
        return Err(refuse("is not a regular file"));
    }
    let mut text = String::new();
    f.take(max)
        .read_to_string(&mut text)
        .map_err(io("cannot read", path))?;
    Ok(text)
}

/// Gives the folder `path` to the unit's user with `mode`, through an fd opened without
/// following links (a chown by path could be redirected by a link swapped in between).
fn give_dir(path: &Path, user: Option<&UnitUser>, mode: u32) -> Result<(), PgError> {
    let d = open_nofollow(path, true).map_err(io("cannot open folder", path))?;
    give_fd(&d, path, user, mode)
}

/// fchown + fchmod of an open file.
fn give_fd(
    f: &std::fs::File,
    path: &Path,
    user: Option<&UnitUser>,
    mode: u32,
) -> Result<(), PgError> {
    if let Some(u) = user {
        std::os::unix::fs::fchown(f, Some(u.uid), Some(u.gid)).map_err(io("chown", path))?;
    }
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io("chmod", path))
}

/// PG_VERSION's major version, refused when it is a link, not a file, or not a version
/// (never echoed: it could be any file's content).
fn data_version(cfg: &PgServer) -> Result<String, PgError> {
    let path = cfg.data_dir.join("PG_VERSION");
    let text = read_plain(&path, 64)?;
    let v = text.trim();
    if v.is_empty() || v.len() > 8 || !v.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(PgError::Unsafe {
            path,
            why: "does not hold a PostgreSQL version",
        });
    }
    Ok(v.to_string())
}

/// Runs before every start of the server.
pub async fn prepare(cfg: &PgServer, ctx: &TaskContext) -> Result<(), PgError> {
    let user = unit_user(cfg)?;
    if cfg.container.is_none() {
        check_programs(cfg)?;
    }
    let password = ctx.secrets.ensure(
        &cfg.superuser_secret(),
        &SecretKind::Random { bytes: 32 },
        None,
    )?;

    std::fs::create_dir_all(&cfg.socket_dir).map_err(io("cannot create", &cfg.socket_dir))?;
    give_dir(&cfg.socket_dir, user.as_ref(), 0o755)?;
    // A container sees only its bind mounts, not the folders above them.
    if let (Some(u), None) = (&user, &cfg.container) {
        check_reachable(cfg, u, &cfg.socket_dir)?;
        check_reachable(cfg, u, &cfg.data_dir)?;
    }

    // Any entry (a link included) means a cluster: checked, never followed.
    if std::fs::symlink_metadata(cfg.data_dir.join("PG_VERSION")).is_ok() {
        return check_existing(cfg, ctx, user.as_ref()).await;
    }
    if let Ok(mut rd) = std::fs::read_dir(&cfg.data_dir) {
        if rd.next().is_some() {
            return Err(PgError::Io {
                what: "not a PostgreSQL data dir (no PG_VERSION) and not empty; move it away so initdb can create",
                path: cfg.data_dir.clone(),
                source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            });
        }
    }
    initdb(cfg, ctx, user.as_ref(), &password).await?;
    super::switch::record(cfg)
}

/// The native form's `postgres` and `initdb` must be executables.
fn check_programs(cfg: &PgServer) -> Result<(), PgError> {
    for (prog, name) in [("postgres", "postgres"), ("initdb", "initdb")] {
        let p = cfg.bin(name);
        let ok = std::fs::metadata(&p)
            .map(|m| m.is_file() && m.mode() & 0o111 != 0)
            .unwrap_or(false);
        if !ok {
            return Err(PgError::NoProgram {
                unit: cfg.unit.clone(),
                program: prog,
                path: p,
            });
        }
    }
    Ok(())
}

/// An existing cluster: its version against the server's, the pid file, its owner (given
/// to the new form's user when the other form ran it last); its files are not modified.
async fn check_existing(
    cfg: &PgServer,
    ctx: &TaskContext,
    user: Option<&UnitUser>,
) -> Result<(), PgError> {
    let data = data_version(cfg)?;
    let from = super::switch::recorded_form(cfg);
    super::switch::check_major(cfg, &from, &data).await?;
    check_pid_file(cfg, ctx)?;
    if let Some(u) = user {
        let md = std::fs::metadata(&cfg.data_dir).map_err(io("cannot stat", &cfg.data_dir))?;
        if md.uid() != u.uid && from != cfg.form() {
            super::switch::give_tree(cfg, ctx, &from, u)?;
        } else if md.uid() != u.uid {
            return Err(PgError::WrongOwner {
                unit: cfg.unit.clone(),
                path: cfg.data_dir.clone(),
                owner: md.uid(),
                user: u.name.clone(),
                uid: u.uid,
            });
        }
    }
    super::switch::record(cfg)
}

/// initdb into a hidden sibling, then rename: an interrupted initdb never leaves a
/// half-made data dir that looks initialized.
async fn initdb(
    cfg: &PgServer,
    ctx: &TaskContext,
    user: Option<&UnitUser>,
    password: &str,
) -> Result<(), PgError> {
    let started = Instant::now();
    let parent = cfg
        .data_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    std::fs::create_dir_all(&parent).map_err(io("cannot create", &parent))?;
    let tmp = parent.join(format!(".{}.initdb", cfg.unit));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io("cannot remove leftover", &tmp))?;
    }
    std::fs::create_dir(&tmp).map_err(io("cannot create", &tmp))?;
    give_dir(&tmp, user, 0o700)?;

    let pwdir = PwDir::create(cfg)?;
    let pwfile = pwdir.write(user, password)?;
    let mut cmd = match &cfg.container {
        Some(c) => super::container::initdb_command(c, &tmp, &pwfile),
        None => initdb_command(cfg, &tmp, &pwfile, user),
    };
    ctx.log(format!(
        "initdb {} (superuser {SUPERUSER}, scram-sha-256)",
        cfg.data_dir.display()
    ));
    let out = cmd.output().await;
    drop(pwdir);
    let out = out.map_err(io("cannot run", &cfg.bin("initdb")))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        let text = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = text.lines().rev().take(8).collect();
        return Err(PgError::Initdb {
            path: cfg.data_dir.clone(),
            status: out.status.to_string(),
            output: tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
        });
    }
    std::fs::rename(&tmp, &cfg.data_dir)
        .map_err(io("cannot move initdb result to", &cfg.data_dir))?;
    if let Ok(d) = std::fs::File::open(&parent) {
        let _ = d.sync_all();
    }
    ctx.log(format!(
        "initdb done in {} ms",
        started.elapsed().as_millis()
    ));
    Ok(())
}

/// A fresh root-owned folder (0711) for the initdb password file, beside the socket
/// folder in the root-owned runtime dir: the unit's user can read the file it is given but
/// cannot plant, swap or link anything there (the socket folder is the unit user's own).
struct PwDir(PathBuf);

impl PwDir {
    fn create(cfg: &PgServer) -> Result<PwDir, PgError> {
        use std::os::unix::fs::DirBuilderExt;
        let parent = cfg.socket_dir.parent().unwrap_or(Path::new("/"));
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = parent.join(format!(
            ".{}-initdb-{}-{nonce:x}",
            cfg.unit,
            std::process::id()
        ));
        // mkdir never follows a link at the last component: an existing entry fails.
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(io("cannot create", &dir))?;
        let pw = PwDir(dir);
        give_dir(&pw.0, None, 0o711)?;
        Ok(pw)
    }

    /// The superuser's password for `initdb --pwfile`, readable by the unit's user only
    /// (never on a command line); created exclusively, given away through its fd.
    fn write(&self, user: Option<&UnitUser>, password: &str) -> Result<PathBuf, PgError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let pwfile = self.0.join("pwfile");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&pwfile)
            .map_err(io("cannot write", &pwfile))?;
        f.write_all(password.as_bytes())
            .map_err(io("cannot write", &pwfile))?;
        give_fd(&f, &pwfile, user, 0o600)?;
        Ok(pwfile)
    }
}

impl Drop for PwDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `initdb` into `tmp` as the unit's user, with a clean environment.
fn initdb_command(
    cfg: &PgServer,
    tmp: &Path,
    pwfile: &Path,
    user: Option<&UnitUser>,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(cfg.bin("initdb"));
    cmd.arg("-D")
        .arg(tmp)
        .arg(format!("--username={SUPERUSER}"))
        .arg(format!("--pwfile={}", pwfile.display()))
        .args([
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--data-checksums",
        ])
        .current_dir("/")
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(u) = user {
        cmd.uid(u.uid).gid(u.gid);
    }
    cmd
}

/// What `postmaster.pid` says about the data dir.
#[derive(Debug, PartialEq, Eq)]
pub enum PidFile {
    Absent,
    /// No live process has that pid (or the file is unreadable garbage).
    Stale(String),
    /// A live process that is not a postgres serving this data dir (pid reuse).
    Reused(String),
    /// A live postgres serving this data dir.
    Live(i32),
    /// A symlink or something else than a plain file: never followed nor removed.
    Refused(&'static str),
}

/// Classifies the pid file of `data_dir`.
pub fn inspect_pid_file(data_dir: &Path) -> PidFile {
    let path = data_dir.join("postmaster.pid");
    let text = match read_plain(&path, 4096) {
        Ok(text) => text,
        Err(PgError::Unsafe { why, .. }) => return PidFile::Refused(why),
        Err(PgError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return PidFile::Absent
        }
        Err(_) => return PidFile::Stale("unreadable".into()),
    };
    let pid = match text.lines().next().map(str::trim).map(str::parse::<i32>) {
        Some(Ok(p)) if p > 0 => p,
        _ => return PidFile::Stale("no pid in it".into()),
    };
    // EPERM still means alive.
    if let Err(Errno::ESRCH) = kill(Pid::from_raw(pid), None) {
        return PidFile::Stale(format!("pid {pid} is gone"));
    }
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default();
    let looks_postgres = comm.contains("postgres")
        || comm.contains("postmaster")
        || cmdline.contains("postgres")
        || cmdline.contains("postmaster");
    if !looks_postgres {
        return PidFile::Reused(format!("pid {pid} is now {:?}", comm.trim().to_string()));
    }
    // The postmaster chdirs into its data dir; when we can see its cwd we know for sure.
    let ours = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    match std::fs::read_link(format!("/proc/{pid}/cwd")) {
        Ok(cwd) if cwd != ours && !cmdline.contains(&*ours.to_string_lossy()) => {
            PidFile::Reused(format!("pid {pid} is a postgres serving {}", cwd.display()))
        }
        // Same data dir, or unknowable: never touch a possibly live cluster.
        _ => PidFile::Live(pid),
    }
}

/// Removes a stale pid file; refuses when a live server holds the data dir.
fn check_pid_file(cfg: &PgServer, ctx: &TaskContext) -> Result<(), PgError> {
    let path = cfg.data_dir.join("postmaster.pid");
    match inspect_pid_file(&cfg.data_dir) {
        PidFile::Absent => Ok(()),
        PidFile::Live(pid) => Err(PgError::ForeignPostmaster {
            path: cfg.data_dir.clone(),
            pid,
        }),
        PidFile::Refused(why) => Err(PgError::Unsafe { path, why }),
        PidFile::Stale(why) | PidFile::Reused(why) => {
            std::fs::remove_file(&path).map_err(io("cannot remove stale", &path))?;
            ctx.log(format!(
                "removed stale {} ({why}); PostgreSQL recovers from its WAL",
                path.display()
            ));
            Ok(())
        }
    }
}
