//! Image presence: checked before every start because images are never pulled.

use super::command;
use super::PodmanError;

/// Whether `image` is in podman's local storage.
pub async fn present(image: &str) -> Result<bool, PodmanError> {
    match command::output(&["image", "exists", image]).await {
        Ok(_) => Ok(true),
        Err(PodmanError::Command { code: Some(1), .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Blocking variant of [`present`] (for `bundle`).
pub fn present_blocking(image: &str) -> Result<bool, PodmanError> {
    match command::output_blocking(&["image", "exists", image]) {
        Ok(_) => Ok(true),
        Err(PodmanError::Command { code: Some(1), .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Fails with the operator's fix when `image` is missing.
pub async fn require(unit: &str, image: &str) -> Result<(), PodmanError> {
    if present(image).await? {
        Ok(())
    } else {
        Err(PodmanError::ImageMissing {
            unit: unit.into(),
            image: image.into(),
        })
    }
}

/// `podman save -o OUT IMAGE` (docker-archive: one image, its tag kept for `load`).
pub fn save_blocking(image: &str, out: &str) -> Result<(), PodmanError> {
    command::output_blocking(&[
        "save",
        "--quiet",
        "--format",
        "docker-archive",
        "-o",
        out,
        image,
    ])
    .map(drop)
}
