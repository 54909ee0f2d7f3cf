//! The daemon under test on a logto/lobechat config whose `[control]` socket is
//! `control.sock` beside the config (see [`super::stack_tables`]).

use crate::support::daemon::TestDaemon;
use std::path::Path;
use std::time::Duration;

/// Starts the daemon on `config`, output to `log` (does not wait for it).
pub fn start(config: &Path, log: &Path) -> TestDaemon {
    let dir = config.parent().expect("config file in a folder");
    TestDaemon::builder(config)
        .socket(&dir.join("control.sock"))
        .log(log)
        .stop_grace(Duration::from_secs(20))
        .spawn()
}
