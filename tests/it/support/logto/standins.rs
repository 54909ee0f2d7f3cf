//! Release folders laid out like Logto's and LobeChat's, with stand-in programs where the
//! real entry points are, run by the real `node` (the presets' `node` + `release_dir`).

use std::path::{Path, PathBuf};

/// A stand-in program from tests/standins/.
pub(super) fn standin(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/standins")
        .join(name)
}

/// Copies `src` to `dst`, creating `dst`'s folder.
pub(super) fn put(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    std::fs::copy(src, dst)
        .unwrap_or_else(|e| panic!("copy {} → {}: {e}", src.display(), dst.display()));
}

/// The node binary the stand-ins run on.
pub fn node() -> PathBuf {
    prometheus_stack::plan::find_executable("node", None)
        .expect("node is missing: run tests/setup.sh")
}

/// `dir/logto`: packages/core/index.js (the server), packages/cli/bin/logto.js (the seed),
/// packages/cli/fixture.sql (what the seed creates).
pub fn logto_release(dir: &Path) -> PathBuf {
    let root = dir.join("logto");
    let core = root.join("packages/core");
    put(&standin("logto_core_standin.js"), &core.join("index.js"));
    put(
        &standin("standin_common.js"),
        &core.join("standin_common.js"),
    );
    let bin = root.join("packages/cli/bin");
    put(&standin("logto_seed_standin.js"), &bin.join("logto.js"));
    put(
        &standin("standin_common.js"),
        &bin.join("standin_common.js"),
    );
    put(&super::schema_sql(), &root.join("packages/cli/fixture.sql"));
    root
}

/// `dir/lobechat-EDITION`: server.js, docker.cjs, migrations/, and the stand-in's
/// expectations (`standin.json`: edition, extra required or exact variables).
pub fn lobechat_release(dir: &Path, expect: &serde_json::Value) -> PathBuf {
    let ed = expect["edition"].as_str().unwrap();
    let root = dir.join(format!("lobechat-{ed}"));
    put(
        &standin("lobechat_server_standin.js"),
        &root.join("server.js"),
    );
    put(
        &standin("lobechat_migrate_standin.js"),
        &root.join("docker.cjs"),
    );
    put(
        &standin("standin_common.js"),
        &root.join("standin_common.js"),
    );
    put(
        &standin("lobechat_rp_standin.js"),
        &root.join("lobechat_rp_standin.js"),
    );
    std::fs::create_dir_all(root.join("migrations")).unwrap();
    std::fs::write(root.join("standin.json"), expect.to_string()).unwrap();
    root
}
