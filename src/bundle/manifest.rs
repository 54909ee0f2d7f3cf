//! `manifest.json`: the last entry of a bundle, listing every other entry with its
//! sha256 and size.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::PathBuf;

/// Name of the manifest entry inside the bundle.
pub const MANIFEST: &str = "manifest.json";
/// Bumped when the layout changes incompatibly.
pub const FORMAT: u32 = 1;

/// The bundle's table of contents.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// `prometheus-stack VERSION`.
    pub created_by: String,
    /// Stack name of the config the bundle was made from.
    pub stack: String,
    pub files: Vec<FileEntry>,
}

/// One entry of the bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path inside the tar.
    pub path: String,
    /// Lowercase hex.
    pub sha256: String,
    pub size: u64,
    #[serde(flatten)]
    pub content: Content,
}

/// What an entry holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Content {
    /// `podman save` output of one image.
    Image { image: String },
    /// A native file, restored to `target` with `mode`.
    Artifact { target: PathBuf, mode: u32 },
}

/// A reader that hashes and counts what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }
    /// Hex digest and byte count.
    pub fn finish(self) -> (String, u64) {
        (hex::encode(self.hasher.finalize()), self.count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}
