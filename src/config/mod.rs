//! The one config file: parsing with every problem reported by key path and line.

#[cfg(test)]
mod check_fuzz;
mod load;
pub mod model;
pub mod units;

pub use load::{load_file, load_str, Source, DEFAULT_CONFIG, DEFAULT_PATH};
pub use model::ConfigFile;
pub use units::{ByteSize, Dur};

use std::fmt;
use std::path::PathBuf;

/// One problem in the config, located by TOML key path and (when known) line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Dotted key path, e.g. `services.web.depends_on`.
    pub key: String,
    /// 1-based line in the file, when the key could be found.
    pub line: Option<usize>,
    pub message: String,
}

impl Issue {
    /// An issue not yet located in the file (`Source::locate` fills the line).
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Issue {
            key: key.into(),
            line: None,
            message: message.into(),
        }
    }
}

/// Errors reading or validating the config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", render_issues(.file, .issues))]
    Invalid { file: String, issues: Vec<Issue> },
}

fn render_issues(file: &str, issues: &[Issue]) -> String {
    let mut out = format!(
        "{file}: {} problem{}",
        issues.len(),
        if issues.len() == 1 { "" } else { "s" }
    );
    for i in issues {
        out.push('\n');
        out.push_str(&format_issue(file, i));
    }
    out
}

/// `file:line: key: message`, the shape editors and grep understand.
pub fn format_issue(file: &str, i: &Issue) -> String {
    match (i.line, i.key.is_empty()) {
        (Some(l), false) => format!("  {file}:{l}: {}: {}", i.key, i.message),
        (Some(l), true) => format!("  {file}:{l}: {}", i.message),
        (None, false) => format!("  {file}: {}: {}", i.key, i.message),
        (None, true) => format!("  {file}: {}", i.message),
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}
