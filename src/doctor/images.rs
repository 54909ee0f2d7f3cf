//! Every image the plan names is loaded in podman's store (air-gapped: nothing is pulled).

use super::Finding;
use crate::plan::{Plan, Runtime};
use std::collections::BTreeMap;

/// One finding per image `podman image exists` does not know; `podman` is the program.
pub async fn check_images(plan: &Plan, podman: &str) -> Vec<Finding> {
    let mut images: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for u in &plan.units {
        if let Runtime::Podman(p) = &u.runtime {
            images
                .entry(p.image.as_str())
                .or_default()
                .push(u.name.as_str());
        }
    }
    let mut out = Vec::new();
    for (image, units) in images {
        let res = tokio::process::Command::new(podman)
            .args(["image", "exists", image])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .output()
            .await;
        let units = units.join(", ");
        match res {
            Ok(o) if o.status.success() => {}
            Ok(o) if o.status.code() == Some(1) => out.push(Finding::error(
                "images",
                format!("image {image} (unit {units}) is not loaded in podman"),
                "prometheus-stack bundle import BUNDLE.tar (the bundle made with `bundle create`), or `podman load` the image",
            )),
            Ok(o) => out.push(Finding::error(
                "images",
                format!("podman cannot tell whether image {image} (unit {units}) is loaded: {}", String::from_utf8_lossy(&o.stderr).trim()),
                "fix podman (`podman info` shows what is wrong)",
            )),
            Err(e) => {
                out.push(Finding::error(
                    "images",
                    format!("units {units} run in podman but {podman} cannot be run: {e}"),
                    "apt-get install podman (from the Debian install media on air-gapped hosts)",
                ));
                break;
            }
        }
    }
    out
}
