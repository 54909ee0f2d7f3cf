//! Offline bundles for air-gapped installs: `create` saves every image the plan needs and
//! `[bundle].artifacts` with a sha256 manifest; `import` verifies all of it before
//! loading anything; `list` compares what the plan needs with what is present.
//!
//! Layout (a plain tar): `images/NN-NAME.tar` (`podman save`, docker-archive),
//! `artifacts/ABSOLUTE/PATH`, and `manifest.json` last (so `create` can stream).

mod create;
mod image_tags;
mod import;
mod list;
mod manifest;
mod progress;
mod restore;
mod verify;

pub use create::{create, Created};
pub use import::{import, Imported};
pub use list::{list, Listing, Presence};
pub use manifest::{Content, FileEntry, HashingReader, Manifest, MANIFEST};
pub use progress::{mib, Progress};
pub use verify::{verify, Verified};

use crate::plan::{Plan, Runtime};
use crate::runtime::podman::PodmanError;
use std::path::PathBuf;

/// Errors of `bundle`; each names the image, file or entry at fault.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("not in podman's local storage (bundle create never pulls; load or build them here first): {}", images.join(", "))]
    ImagesMissing { images: Vec<String> },
    #[error("[bundle].artifacts that do not exist: {}", paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    ArtifactsMissing { paths: Vec<PathBuf> },
    #[error("[bundle].artifacts: {path} is {what}; list regular files or folders")]
    Unsupported { path: PathBuf, what: &'static str },
    #[error("artifact {path} changed while it was being added; run bundle create again")]
    Changed { path: PathBuf },
    #[error("bundle {file} is truncated or damaged in {entry}: {reason}; nothing was loaded")]
    Truncated {
        file: String,
        entry: String,
        reason: String,
    },
    #[error("bundle {file} has no manifest.json (truncated after {last}, or not a prometheus-stack bundle); nothing was loaded")]
    NoManifest { file: String, last: String },
    #[error("bundle {file}: bad manifest.json: {reason}; nothing was loaded")]
    BadManifest { file: String, reason: String },
    #[error("bundle {file} is corrupt; nothing was loaded:\n  {}", problems.join("\n  "))]
    Corrupt { file: String, problems: Vec<String> },
    #[error("loading image {image}: {reason}")]
    Load { image: String, reason: String },
    #[error(transparent)]
    Podman(#[from] PodmanError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// Images the plan's podman units need, each with the units using it, in plan order.
pub fn needed_images(plan: &Plan) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for u in &plan.units {
        if let Runtime::Podman(spec) = &u.runtime {
            match out.iter_mut().find(|(i, _)| *i == spec.image) {
                Some((_, units)) => units.push(u.name.clone()),
                None => out.push((spec.image.clone(), vec![u.name.clone()])),
            }
        }
    }
    out
}
