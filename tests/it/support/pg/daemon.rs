//! The daemon under test on a postgres config, with `control.sock` and `daemon.log`
//! beside the config (the log is appended to across restarts).

use crate::support::daemon::TestDaemon;
use std::path::Path;
use std::time::Duration;

/// Starts the daemon on `config` (does not wait for it: the tests poll unit states).
pub fn start_beside(config: &Path) -> TestDaemon {
    let dir = config.parent().expect("config file in a folder");
    TestDaemon::builder(config)
        .socket(&dir.join("control.sock"))
        .log(&dir.join("daemon.log"))
        .append_log()
        .stop_grace(Duration::from_secs(60))
        .spawn()
}
