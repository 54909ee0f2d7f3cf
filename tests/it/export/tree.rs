//! Exporting packaging/stack.toml for the tests, and reading the written tree back.

use prometheus_stack::export::kubernetes::{self, IngressMode, Options, SecretsMode};
use prometheus_stack::plan::{build_from_file, BuildOptions, Plan};
use prometheus_stack::secrets::SecretStore;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// packaging/stack.toml with `data_dir` in `dir` (PostgreSQL runs from its image there,
/// so the export does not depend on the host's PostgreSQL); returns the config's path.
pub fn config(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("packaging/stack.toml")).unwrap();
    let text = text.replace(
        "data_dir = \"/var/lib/prometheus-stack\"",
        &format!("data_dir = \"{}\"", dir.join("data").display()),
    );
    let path = dir.join("stack.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The plan of `config`.
pub fn plan(config: &Path) -> Plan {
    build_from_file(config, BuildOptions { check_host: false })
        .expect("packaging/stack.toml builds")
}

/// Options as the golden tree uses them: external secrets, the default namespace.
pub fn options(config: &Path, secrets: SecretsMode, ingress: IngressMode) -> Options {
    Options {
        namespace: "prometheus-stack".into(),
        replicas: BTreeMap::from([("lobechat".to_string(), 3)]),
        secrets,
        ingress,
        image: "localhost/prometheus-stack:golden".into(),
        gateway: "prometheus-stack".into(),
        ingress_class: None,
        cluster_issuer: Some("letsencrypt".into()),
        config_text: std::fs::read_to_string(config).unwrap(),
        external: external_of(config),
    }
}

/// The config's `external_url`s, as the CLI reads them.
pub fn external_of(config: &Path) -> BTreeMap<String, String> {
    let (cfg, _) = prometheus_stack::config::load_file(config).unwrap();
    kubernetes::external_addresses(&cfg).expect("external_url parses")
}

/// Exports into `out` and reads every file back as JSON, by file name.
pub fn export_and_read(plan: &Plan, opts: &Options, out: &Path) -> BTreeMap<String, Value> {
    let store = SecretStore::with_credentials(&plan.stack.data_dir, None);
    let tree = kubernetes::export(plan, opts, &store).expect("export");
    let n = kubernetes::write_tree(&tree, out).expect("write");
    let mut back = BTreeMap::new();
    for e in std::fs::read_dir(out).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        back.insert(
            name,
            serde_json::from_str(&text).expect("every file is JSON (YAML 1.2)"),
        );
    }
    assert_eq!(back.len(), n);
    back
}

/// The objects of one kind.
pub fn of_kind<'a>(tree: &'a BTreeMap<String, Value>, kind: &str) -> Vec<&'a Value> {
    tree.values().filter(|o| o["kind"] == kind).collect()
}
