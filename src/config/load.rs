//! Reading stack.toml: syntax, then each section on its own so that every bad key is reported.

use super::model::ConfigFile;
use super::{ConfigError, Issue};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Where the daemon looks when no `--config` is given.
pub const DEFAULT_PATH: &str = "/etc/prometheus-stack/stack.toml";

/// The embedded default: local use, data in ./prometheus-stack-data, ports above 1024.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// The file text with the spans needed to turn key paths into line numbers.
#[derive(Debug, Clone)]
pub struct Source {
    /// Path as given, or `<embedded default>`.
    pub name: String,
    /// Absolute path when read from disk (reload reads it again).
    pub path: Option<PathBuf>,
    pub text: String,
    /// Problems found while parsing (bad keys were dropped); `plan::build` reports them
    /// together with its own so that `check` lists everything at once.
    pub parse_issues: Vec<Issue>,
    doc: Option<toml_edit::ImDocument<String>>,
}

impl Source {
    /// Wraps text for locating keys; `path` is None for the embedded default.
    pub fn new(name: impl Into<String>, path: Option<PathBuf>, text: String) -> Self {
        let doc = toml_edit::ImDocument::parse(text.clone()).ok();
        Source {
            name: name.into(),
            path,
            text,
            parse_issues: Vec::new(),
            doc,
        }
    }

    /// Line (1-based) of a dotted key path such as `services.web.port`; walks
    /// up to the nearest existing parent when the exact key is absent.
    pub fn line_of(&self, key: &str) -> Option<usize> {
        use toml_edit::{Item, Value};
        enum Node<'a> {
            Item(&'a Item),
            Table(&'a toml_edit::Table),
            Value(&'a Value),
        }
        let doc = self.doc.as_ref()?;
        let mut best = None;
        let mut node = Node::Item(doc.as_item());
        for part in key.split('.') {
            let index = part.parse::<usize>().ok();
            // (next node, span of the key naming it or of the node itself)
            let next: Option<(Node, Option<std::ops::Range<usize>>)> = match node {
                Node::Item(Item::Table(t)) | Node::Table(t) => t.get(part).map(|i| {
                    (
                        Node::Item(i),
                        t.key(part).and_then(|k| k.span()).or(i.span()),
                    )
                }),
                Node::Item(Item::ArrayOfTables(a)) => index
                    .and_then(|i| a.get(i))
                    .map(|t| (Node::Table(t), t.span())),
                Node::Item(Item::Value(v)) | Node::Value(v) => match v {
                    Value::InlineTable(t) => t.get(part).map(|v| {
                        (
                            Node::Value(v),
                            t.key(part).and_then(|k| k.span()).or(v.span()),
                        )
                    }),
                    Value::Array(a) => index
                        .and_then(|i| a.get(i))
                        .map(|v| (Node::Value(v), v.span())),
                    _ => None,
                },
                _ => None,
            };
            let Some((n, span)) = next else { break };
            if span.is_some() {
                best = span;
            }
            node = n;
        }
        best.map(|span| {
            self.text[..span.start.min(self.text.len())]
                .matches('\n')
                .count()
                + 1
        })
    }

    /// Fills in the line of each issue.
    pub fn locate(&self, mut issues: Vec<Issue>) -> Vec<Issue> {
        for i in &mut issues {
            if i.line.is_none() {
                i.line = self.line_of(&i.key);
            }
        }
        issues
    }

    /// Directory relative paths in the file are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        self.path
            .as_ref()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")))
    }
}

/// Reads and parses a config file. Bad keys are dropped and recorded in
/// `Source::parse_issues`; only unreadable files and TOML syntax errors fail here.
pub fn load_file(path: &Path) -> Result<(ConfigFile, Source), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    load_str(&path.display().to_string(), Some(abs), text)
}

/// Parses config text (used for the embedded default and tests).
pub fn load_str(
    name: &str,
    path: Option<PathBuf>,
    text: String,
) -> Result<(ConfigFile, Source), ConfigError> {
    let mut source = Source::new(name, path, text);
    let table: toml::Table = match toml::from_str(&source.text) {
        Ok(t) => t,
        Err(e) => {
            let line = e.span().map(|s| {
                source.text[..s.start.min(source.text.len())]
                    .matches('\n')
                    .count()
                    + 1
            });
            return Err(ConfigError::Invalid {
                file: source.name.clone(),
                issues: vec![Issue {
                    key: String::new(),
                    line,
                    message: format!("TOML syntax: {}", e.message()),
                }],
            });
        }
    };
    let mut issues = Vec::new();
    let mut cfg = ConfigFile::default();
    for (section, value) in table {
        match section.as_str() {
            "stack" => section_into(&section, value, &mut issues, &mut cfg.stack),
            "control" => section_into(&section, value, &mut issues, &mut cfg.control),
            "proxy" => {
                let mut p = None;
                section_into(&section, value, &mut issues, &mut p);
                cfg.proxy = p;
            }
            "gpu" => section_into(&section, value, &mut issues, &mut cfg.gpu),
            "metrics" => {
                let mut m = None;
                section_into(&section, value, &mut issues, &mut m);
                cfg.metrics = m;
            }
            "bundle" => section_into(&section, value, &mut issues, &mut cfg.bundle),
            "backup" => section_into(&section, value, &mut issues, &mut cfg.backup),
            "services" => match value {
                toml::Value::Table(units) => {
                    for (name, unit) in units {
                        let key = format!("services.{name}");
                        if let Some(u) = parse_value(&key, unit, &mut issues) {
                            cfg.services.insert(name, u);
                        }
                    }
                }
                _ => issues.push(Issue::new("services", "must be a table of units ([services.NAME])")),
            },
            other => issues.push(Issue::new(
                other,
                "unknown section; expected one of stack, control, proxy, services, gpu, metrics, bundle, backup",
            )),
        }
    }
    source.parse_issues = source.locate(issues);
    Ok((cfg, source))
}

fn section_into<T: DeserializeOwned>(
    key: &str,
    value: toml::Value,
    issues: &mut Vec<Issue>,
    out: &mut T,
) {
    if let Some(v) = parse_value(key, value, issues) {
        *out = v;
    }
}

/// Deserializes one value, turning each serde error into an issue at its exact key.
/// The offending key is removed and parsing retried, so one bad key does not hide the next.
fn parse_value<T: DeserializeOwned>(
    key: &str,
    mut value: toml::Value,
    issues: &mut Vec<Issue>,
) -> Option<T> {
    for _ in 0..64 {
        let err = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(v) => return Some(v),
            Err(e) => e,
        };
        let segments: Vec<String> = err
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                _ => None,
            })
            .collect();
        let msg = err.into_inner().message().to_string();
        let mut full = key.to_string();
        for s in &segments {
            full.push('.');
            full.push_str(s);
        }
        issues.push(Issue::new(full, msg));
        if segments.is_empty() || !remove_path(&mut value, &segments) {
            return None;
        }
    }
    None
}

/// Removes the value at `path`; false when nothing could be removed.
fn remove_path(v: &mut toml::Value, path: &[String]) -> bool {
    let (last, parents) = path.split_last().expect("non-empty");
    let mut cur = v;
    for p in parents {
        cur = match cur {
            toml::Value::Table(t) => match t.get_mut(p) {
                Some(n) => n,
                None => return false,
            },
            toml::Value::Array(a) => match p.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(n) => n,
                None => return false,
            },
            _ => return false,
        };
    }
    match cur {
        toml::Value::Table(t) => t.remove(last).is_some(),
        toml::Value::Array(a) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => {
                a.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}
