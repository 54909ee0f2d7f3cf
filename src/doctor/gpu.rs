//! The NVIDIA driver loads (NVML) when a unit asks for GPU memory or GPU devices.

use super::Finding;
use crate::plan::{Plan, Runtime};
use std::path::Path;

/// Units that need the GPU, and one finding when NVML does not load. `nvml` replaces
/// the system's library (tests).
pub fn check_gpu(plan: &Plan, nvml: Option<&Path>) -> Vec<Finding> {
    let wanting: Vec<&str> = plan
        .units
        .iter()
        .filter(|u| u.gpu.is_some() || matches!(&u.runtime, Runtime::Podman(p) if p.gpu_devices))
        .map(|u| u.name.as_str())
        .collect();
    if wanting.is_empty() {
        return Vec::new();
    }
    let opened = match nvml {
        Some(p) => crate::gpu::NvmlSource::open_path(p),
        None => crate::gpu::NvmlSource::open(),
    };
    match opened {
        Ok(_) => Vec::new(),
        Err(e) => vec![Finding::error(
            "gpu",
            format!(
                "unit{} {} ask{} for the GPU but the NVIDIA driver does not answer: {e}",
                if wanting.len() == 1 { "" } else { "s" },
                wanting.join(", "),
                if wanting.len() == 1 { "s" } else { "" },
            ),
            "install the NVIDIA driver (and nvidia-container-toolkit for podman units) and reboot, or remove `gpu` from those units",
        )],
    }
}
