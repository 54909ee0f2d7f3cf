//! The exported tree of packaging/stack.toml equals tests/export/golden/ (reviewed by
//! hand once). After an intended change: `UPDATE_GOLDEN=1 cargo test --test it export::golden`,
//! then review the diff.

use super::tree;
use prometheus_stack::export::kubernetes::{IngressMode, SecretsMode};
use std::path::Path;

#[test]
fn packaging_stack_toml_exports_the_golden_tree() {
    let dir = tempfile::tempdir().unwrap();
    // A fixed data_dir: the config's text is in the tree (ConfigMap).
    let cfg_dir = Path::new("/var/lib/prometheus-stack-golden");
    let cfg = tree::config(dir.path());
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        &dir.path().join("data").display().to_string(),
        &cfg_dir.display().to_string(),
    );
    std::fs::write(&cfg, text).unwrap();
    let plan = tree::plan(&cfg);
    let opts = tree::options(&cfg, SecretsMode::External, IngressMode::Ingress);
    let out = dir.path().join("out");
    let got = tree::export_and_read(&plan, &opts, &out);
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/export/golden");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let _ = std::fs::remove_dir_all(&golden);
        std::fs::create_dir_all(&golden).unwrap();
        for name in got.keys() {
            std::fs::copy(out.join(name), golden.join(name)).unwrap();
        }
    }
    let mut want: Vec<String> = std::fs::read_dir(&golden)
        .expect("tests/export/golden exists (UPDATE_GOLDEN=1 writes it)")
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    want.sort();
    assert_eq!(
        got.keys().cloned().collect::<Vec<_>>(),
        want,
        "the set of files changed"
    );
    for name in &want {
        let a = std::fs::read_to_string(out.join(name)).unwrap();
        let b = std::fs::read_to_string(golden.join(name)).unwrap();
        assert_eq!(a, b, "{name} differs from tests/export/golden/{name}");
    }
    // Byte-stable: a second export writes the same bytes.
    let again = dir.path().join("again");
    tree::export_and_read(&plan, &opts, &again);
    for name in &want {
        assert_eq!(
            std::fs::read(out.join(name)).unwrap(),
            std::fs::read(again.join(name)).unwrap(),
            "{name} is not deterministic"
        );
    }
}
