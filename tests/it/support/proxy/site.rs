//! One site `f.test` in front of a test upstream, for the forwarding and limits tests.

use super::{upstream, write, TestCa};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The files and upstream behind a one-site config.
pub struct Setup {
    pub _dir: tempfile::TempDir,
    pub ca: TestCa,
    pub ca_file: PathBuf,
    pub up: SocketAddr,
}

/// One site `f.test` (plus `extra` TOML after its cert/key) with `routes`.
pub async fn setup(routes: &str, proxy_extra: &str, services: &str) -> (Setup, String) {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("test CA");
    let leaf = ca.ecdsa(&["f.test"]);
    let cert = write(dir.path(), "f.pem", &leaf.chain);
    let key = write(dir.path(), "f.key", &leaf.key);
    let ca_file = write(dir.path(), "ca.pem", &ca.pem);
    let up = upstream::start("f").await;
    let routes = routes.replace("UP", &up.to_string());
    let toml = format!(
        "[stack]\ndata_dir = {:?}\n[proxy]\nhttps = \"127.0.0.1:0\"\n{proxy_extra}\n[[proxy.site]]\nhost = \"f.test\"\ncert = {cert:?}\nkey = {key:?}\nroutes = [{routes}]\n{services}",
        dir.path().join("data")
    );
    (
        Setup {
            _dir: dir,
            ca,
            ca_file,
            up,
        },
        toml,
    )
}
