//! Where the native form's PostgreSQL binaries are: `bin_dir`, else the major version of
//! an existing cluster, else the newest Debian-layout install.

use super::DEBIAN_PG_ROOT;
use crate::config::Issue;
use crate::stack::PresetCtx;
use std::path::{Path, PathBuf};

/// Newest `/usr/lib/postgresql/N/bin` holding a `postgres` binary.
pub fn newest_bin_dir(root: &Path) -> Option<PathBuf> {
    let mut best: Option<(u32, PathBuf)> = None;
    for e in std::fs::read_dir(root).ok()?.flatten() {
        let Ok(version) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let bin = e.path().join("bin");
        if bin.join("postgres").is_file() && best.as_ref().is_none_or(|(v, _)| version > *v) {
            best = Some((version, bin));
        }
    }
    best.map(|(_, p)| p)
}

/// `/usr/lib/postgresql/N/bin` for the major version N recorded in `data_dir/PG_VERSION`.
fn existing_major_bin_dir(data_dir: &Path) -> Option<PathBuf> {
    let v = std::fs::read_to_string(data_dir.join("PG_VERSION")).ok()?;
    let bin = Path::new(DEBIAN_PG_ROOT).join(v.trim()).join("bin");
    bin.join("postgres").is_file().then_some(bin)
}

/// The major version of a Debian-layout bin dir (`…/postgresql/15/bin` → "15").
pub fn bin_dir_major(bin_dir: &Path) -> Option<String> {
    let v = bin_dir.parent()?.file_name()?.to_str()?;
    (!v.is_empty() && v.chars().all(|c| c.is_ascii_digit())).then(|| v.to_string())
}

/// `bin_dir`: as set, else the major version of an existing cluster, else the newest
/// installed one.
pub(super) fn resolve_bin_dir(ctx: &PresetCtx, issues: &mut Vec<Issue>) -> PathBuf {
    match &ctx.section.bin_dir {
        Some(p) if p.is_absolute() => p.clone(),
        Some(p) => ctx.base_dir.join(p),
        // An existing cluster keeps its major version when a newer one gets installed.
        None => existing_major_bin_dir(&ctx.stack.data_dir.join(ctx.name))
            .or_else(|| newest_bin_dir(Path::new(DEBIAN_PG_ROOT)))
            .unwrap_or_else(|| {
            issues.push(Issue::new(
                format!("{}.bin_dir", ctx.key),
                format!(
                    "no PostgreSQL found under {DEBIAN_PG_ROOT}/*/bin: install the `postgresql` package or set bin_dir = \"/path/to/postgresql/bin\""
                ),
            ));
            PathBuf::from(DEBIAN_PG_ROOT).join("bin")
        }),
    }
}
