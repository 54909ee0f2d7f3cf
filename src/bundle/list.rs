//! `bundle list`: what the plan needs against what this machine has.

use super::{needed_images, BundleError};
use crate::plan::Plan;
use crate::runtime::podman::image;
use std::path::PathBuf;

/// Whether one needed thing is here.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Presence {
    /// Image name or artifact path.
    pub name: String,
    pub present: bool,
    /// Units using an image; empty for artifacts.
    pub units: Vec<String>,
}

/// Needed against present.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listing {
    pub images: Vec<Presence>,
    pub artifacts: Vec<Presence>,
}

impl Listing {
    /// Everything needed is present.
    pub fn complete(&self) -> bool {
        self.images.iter().chain(&self.artifacts).all(|p| p.present)
    }
}

/// Checks each image in podman's storage and each artifact on disk.
pub fn list(plan: &Plan) -> Result<Listing, BundleError> {
    let mut images = Vec::new();
    for (img, units) in needed_images(plan) {
        images.push(Presence {
            present: image::present_blocking(&img)?,
            name: img,
            units,
        });
    }
    let artifacts = plan
        .bundle_artifacts
        .iter()
        .map(|p: &PathBuf| Presence {
            name: p.display().to_string(),
            present: p.exists(),
            units: Vec::new(),
        })
        .collect();
    Ok(Listing { images, artifacts })
}
