//! Passing a unit's environment to its container without putting values on any command
//! line: single-line values go through a 0600 `--env-file` that is deleted as soon as the
//! container runs; values podman's env-file format cannot carry (newlines, very long
//! lines) go through podman secrets of type `env`, created from stdin.

use super::{command, PodmanError};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// podman reads env files with a line scanner limited to 64 KiB per line.
const MAX_LINE: usize = 60 * 1024;

/// How one unit's environment reaches its container.
#[derive(Debug, Default)]
pub struct EnvSplit {
    /// `KEY=VALUE` lines for the env file.
    pub file: String,
    /// `(secret name, VAR, value)` for values that cannot be a line of the env file.
    pub secrets: Vec<(String, String, String)>,
}

/// Prefix of every podman secret this stack creates.
pub fn secret_prefix(stack: &str) -> String {
    format!("prometheus-stack.{stack}.")
}

/// Name of the podman secret carrying `var` of `unit`.
pub fn secret_name(stack: &str, unit: &str, var: &str) -> String {
    format!("{}{unit}.{var}", secret_prefix(stack))
}

/// Splits the resolved env between the env file and podman secrets.
pub fn split(stack: &str, unit: &str, env: &BTreeMap<String, String>) -> EnvSplit {
    let mut out = EnvSplit::default();
    for (k, v) in env {
        if v.contains(['\n', '\r', '\0']) || k.len() + v.len() + 1 > MAX_LINE {
            out.secrets
                .push((secret_name(stack, unit, k), k.clone(), v.clone()));
        } else {
            out.file.push_str(k);
            out.file.push('=');
            out.file.push_str(v);
            out.file.push('\n');
        }
    }
    out
}

/// Writes the env file 0600 from the first byte on (never world-readable, even briefly).
pub fn write_file(path: &Path, contents: &str) -> Result<(), PodmanError> {
    let err = |e| PodmanError::Io {
        what: format!("cannot write env file {}", path.display()),
        source: e,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    f.write_all(contents.as_bytes()).map_err(err)?;
    Ok(())
}

/// (Re)creates the podman secrets of `split`, values through stdin.
pub async fn create_secrets(split: &EnvSplit) -> Result<(), PodmanError> {
    for (name, _, value) in &split.secrets {
        remove_secrets(std::slice::from_ref(name)).await;
        command::output_with_stdin(&["secret", "create", name, "-"], value.as_bytes()).await?;
    }
    Ok(())
}

/// Removes podman secrets; missing ones are fine.
pub async fn remove_secrets(names: &[String]) {
    for n in names {
        let _ = command::output(&["secret", "rm", n]).await;
    }
}

/// Every podman secret of this stack (for leftover cleanup).
pub async fn stack_secrets(stack: &str) -> Result<Vec<String>, PodmanError> {
    let out = command::output(&["secret", "ls", "--format", "{{.Name}}"]).await?;
    let prefix = secret_prefix(stack);
    Ok(out
        .lines()
        .map(str::trim)
        .filter(|n| n.starts_with(&prefix))
        .map(String::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiline_values_become_secrets() {
        let env: BTreeMap<String, String> = [
            ("A".to_string(), "x=y z ".to_string()),
            ("PEM".to_string(), "line1\nline2".to_string()),
        ]
        .into();
        let s = split("st", "web", &env);
        assert_eq!(s.file, "A=x=y z \n");
        assert_eq!(s.secrets.len(), 1);
        assert_eq!(s.secrets[0].0, "prometheus-stack.st.web.PEM");
        assert_eq!(s.secrets[0].1, "PEM");
    }

    #[test]
    fn env_file_is_0600() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/u.env");
        write_file(&p, "A=1\n").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "A=1\n");
    }
}
