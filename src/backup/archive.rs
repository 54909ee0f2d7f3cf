//! The archive format on disk: a tar inside one zstd stream. [`ArchiveWriter`] appends
//! streamed entries (hashing them on the way) and the manifest last; [`read_entries`]
//! walks an archive entry by entry, hashing each, and returns the manifest it ends with.

use super::manifest::{Entry, Kind, Manifest, MANIFEST};
use super::BackupError;
use crate::bundle::{HashingReader, Progress};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// zstd level: 3 is zstd's default, fast enough to keep up with a disk and a loopback S3.
const LEVEL: i32 = 3;
/// Largest manifest a reader accepts (a million entries fit well below it).
const MANIFEST_MAX: u64 = 512 << 20;

type Sink = zstd::stream::write::Encoder<'static, BufWriter<File>>;

/// Writes one backup archive.
pub struct ArchiveWriter {
    tar: tar::Builder<Sink>,
    entries: Vec<Entry>,
    progress: Option<(Progress, u64, String)>,
    mtime: u64,
}

impl ArchiveWriter {
    /// Creates `path` (must not exist; mode 0600) and starts the zstd stream.
    pub fn create(path: &Path) -> Result<Self, BackupError> {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(BackupError::io(format!("creating {}", path.display())))?;
        let mut enc =
            zstd::stream::write::Encoder::new(BufWriter::with_capacity(1 << 20, f), LEVEL)
                .map_err(BackupError::io("starting zstd"))?;
        enc.include_checksum(true)
            .map_err(BackupError::io("starting zstd"))?;
        let mtime = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Ok(ArchiveWriter {
            tar: tar::Builder::new(enc),
            entries: Vec::new(),
            progress: None,
            mtime,
        })
    }

    /// Starts a progress step (bar on a TTY, one line otherwise) for `total` bytes.
    pub fn phase(&mut self, label: &str, total: u64) {
        self.end_phase();
        self.progress = Some((Progress::start(label, total), 0, label.to_string()));
    }

    /// Ends the current progress step.
    pub fn end_phase(&mut self) {
        if let Some((p, _, label)) = self.progress.take() {
            p.finish(&format!(
                "{label}: done, {} entries so far",
                self.entries.len()
            ));
        }
    }

    /// Appends an entry of exactly `size` bytes read from `r`; fewer bytes is an error
    /// naming the entry (the archive is then abandoned by the caller).
    pub fn append(
        &mut self,
        path: &str,
        size: u64,
        mode: u32,
        kind: Kind,
        r: impl Read,
    ) -> Result<(), BackupError> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(size);
        h.set_mode(mode & 0o7777);
        h.set_mtime(self.mtime);
        let progress = self.progress.as_mut();
        let mut hr = HashingReader::new(Counting {
            inner: r.take(size),
            progress,
        });
        self.tar
            .append_data(&mut h, path, &mut hr)
            .map_err(BackupError::io(format!("writing {path} into the backup")))?;
        let (sha256, got) = hr.finish();
        if got != size {
            return Err(BackupError::Changed {
                entry: path.into(),
                expected: size,
                got,
            });
        }
        self.entries.push(Entry {
            path: path.into(),
            sha256,
            size,
            kind,
        });
        Ok(())
    }

    /// Appends an entry without content (a folder, a bucket).
    pub fn append_empty(&mut self, path: &str, kind: Kind) -> Result<(), BackupError> {
        self.append(path, 0, 0o600, kind, io::empty())
    }

    /// Entries written so far.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Writes the manifest (its entries are the ones appended), ends the zstd stream and
    /// syncs the file to disk.
    pub fn finish(mut self, mut manifest: Manifest) -> Result<Manifest, BackupError> {
        self.end_phase();
        manifest.entries = std::mem::take(&mut self.entries);
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| BackupError::Config(format!("serializing the manifest: {e}")))?;
        let mut h = tar::Header::new_gnu();
        h.set_size(json.len() as u64);
        h.set_mode(0o600);
        h.set_mtime(self.mtime);
        let w = BackupError::io("finishing the backup file");
        self.tar
            .append_data(&mut h, MANIFEST, json.as_slice())
            .map_err(BackupError::io("writing manifest.json"))?;
        let enc = self
            .tar
            .into_inner()
            .map_err(BackupError::io("ending the tar"))?;
        let buf = enc
            .finish()
            .map_err(BackupError::io("ending the zstd stream"))?;
        let f = buf.into_inner().map_err(|e| e.into_error()).map_err(w)?;
        f.sync_all()
            .map_err(BackupError::io("syncing the backup file"))?;
        Ok(manifest)
    }
}

/// Counts bytes into the current progress step.
struct Counting<'a, R> {
    inner: R,
    progress: Option<&'a mut (Progress, u64, String)>,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some((p, done, _)) = self.progress.as_deref_mut() {
            *done += n as u64;
            p.update(*done);
        }
        Ok(n)
    }
}

/// An entry as read back: its path, hash and size.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// Reads `file` entry by entry: `each` gets every entry but the manifest with a reader
/// over its content (what it leaves unread is drained and hashed all the same); returns
/// what was seen and the manifest. Damage names the entry it was found in.
pub fn read_entries(
    file: &Path,
    mut each: impl FnMut(&str, &mut dyn Read) -> Result<(), BackupError>,
) -> Result<(Vec<Seen>, Manifest), BackupError> {
    let name = file.display().to_string();
    let f = File::open(file).map_err(BackupError::io(format!("opening {name}")))?;
    let dec = zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(1 << 20, f))
        .map_err(BackupError::io(format!("reading {name}")))?;
    let mut ar = tar::Archive::new(dec);
    let mut seen = Vec::new();
    let mut manifest = None;
    let mut last = "the start".to_string();
    let damaged = |entry: &str, e: &dyn std::fmt::Display| BackupError::Damaged {
        file: name.clone(),
        entry: entry.to_string(),
        reason: e.to_string(),
    };
    let entries = ar.entries().map_err(|e| damaged("the start", &e))?;
    for entry in entries {
        let after = format!("the header after {last}");
        let mut entry = entry.map_err(|e| damaged(&after, &e))?;
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if path == MANIFEST {
            let mut text = Vec::new();
            (&mut entry)
                .take(MANIFEST_MAX)
                .read_to_end(&mut text)
                .map_err(|e| damaged(MANIFEST, &e))?;
            let m: Manifest =
                serde_json::from_slice(&text).map_err(|e| BackupError::BadManifest {
                    file: name.clone(),
                    reason: e.to_string(),
                })?;
            manifest = Some(m);
            last = path;
            continue;
        }
        let mut hr = HashingReader::new(&mut entry);
        match each(&path, &mut hr) {
            Ok(()) => {}
            Err(BackupError::Damaged {
                file,
                entry,
                reason,
            }) if file.is_empty() => {
                return Err(BackupError::Damaged {
                    file: name,
                    entry,
                    reason,
                })
            }
            Err(e) => return Err(e),
        }
        io::copy(&mut hr, &mut io::sink()).map_err(|e| damaged(&path, &e))?;
        let (sha256, size) = hr.finish();
        seen.push(Seen {
            path: path.clone(),
            sha256,
            size,
        });
        last = path;
    }
    // The zstd frame's own checksum is checked when its end is read.
    let mut rest = ar.into_inner();
    io::copy(&mut rest, &mut io::sink())
        .map_err(|e| damaged(&format!("the end after {last}"), &e))?;
    match manifest {
        Some(m) => Ok((seen, m)),
        None => Err(BackupError::NoManifest { file: name, last }),
    }
}

/// Copies an entry's content to `w`: a read error is damage in `entry` (the file name is
/// filled in by [`read_entries`]), a write error is `what`'s.
pub fn copy_out(
    entry: &str,
    r: &mut dyn Read,
    w: &mut dyn io::Write,
    what: &str,
) -> Result<u64, BackupError> {
    let mut buf = vec![0u8; 256 << 10];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf).map_err(|e| BackupError::Damaged {
            file: String::new(),
            entry: entry.into(),
            reason: e.to_string(),
        })?;
        if k == 0 {
            return Ok(n);
        }
        w.write_all(&buf[..k])
            .map_err(BackupError::io(what.to_string()))?;
        n += k as u64;
    }
}

/// Compares what was read with the manifest: every problem names its entry.
pub fn check(seen: &[Seen], manifest: &Manifest) -> Vec<String> {
    use std::collections::BTreeMap;
    let mut problems = Vec::new();
    let mut listed: BTreeMap<&str, &Entry> = BTreeMap::new();
    for e in &manifest.entries {
        if listed.insert(e.path.as_str(), e).is_some() {
            problems.push(format!("{}: listed twice in the manifest", e.path));
        }
    }
    for s in seen {
        match listed.remove(s.path.as_str()) {
            None => problems.push(format!(
                "{}: in the archive but not in the manifest",
                s.path
            )),
            Some(e) if e.size != s.size => problems.push(format!(
                "{}: {} bytes, the manifest says {}",
                s.path, s.size, e.size
            )),
            Some(e) if e.sha256 != s.sha256 => problems.push(format!(
                "{}: sha256 {} does not match the manifest's {}",
                s.path, s.sha256, e.sha256
            )),
            Some(_) => {}
        }
    }
    for p in listed.keys() {
        problems.push(format!("{p}: in the manifest but missing from the archive"));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, entries: &[(&str, &[u8])]) {
        let mut w = ArchiveWriter::create(path).unwrap();
        for (name, data) in entries {
            let kind = Kind::Data {
                rel: name.to_string(),
                mode: 0o600,
            };
            w.append(name, data.len() as u64, 0o600, kind, *data)
                .unwrap();
        }
        w.finish(Manifest::default()).unwrap();
    }

    #[test]
    fn entries_read_back_with_their_hashes_and_short_readers_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("a.tar.zst");
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        write(&p, &[("data/one", b"hello"), ("data/big", &big)]);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (seen, m) = read_entries(&p, |_, _| Ok(())).unwrap();
        assert_eq!(seen.len(), 2);
        assert!(check(&seen, &m).is_empty());
        assert_eq!(m.entries[1].size, 300_000);

        let mut w = ArchiveWriter::create(&t.path().join("b.tar.zst")).unwrap();
        let e = w
            .append("x", 10, 0o600, Kind::Config, &b"short"[..])
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("x changed while it was being read (5 of 10"),
            "{e}"
        );
    }

    #[test]
    fn a_manifest_that_disagrees_names_each_entry() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("a.tar.zst");
        write(&p, &[("data/one", b"hello"), ("data/two", b"world")]);
        let (seen, mut m) = read_entries(&p, |_, _| Ok(())).unwrap();
        m.entries[0].sha256 = "00".into();
        m.entries[1].path = "data/three".into();
        let problems = check(&seen, &m);
        assert!(
            problems.iter().any(|p| p.starts_with("data/one: sha256")),
            "{problems:?}"
        );
        assert!(problems
            .iter()
            .any(|p| p.starts_with("data/two: in the archive but not")));
        assert!(problems
            .iter()
            .any(|p| p.starts_with("data/three: in the manifest but missing")));
    }
}
