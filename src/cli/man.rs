//! `man [--out-dir DIR]`: the roff pages the .deb ships (packaging/build-deb.sh).
//! clap writes NAME to SUBCOMMANDS from the command definitions; the main page also
//! gets FILES, so that `man prometheus-stack` says where everything lives.

use super::Cli;
use anyhow::Context;
use clap::CommandFactory;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

const FILES: &str = r#".SH FILES
.TP
.I /etc/prometheus-stack/stack.toml
The configuration (a conffile: upgrades keep your edits).
\fBprometheus\-stack check\fR lists every line still to edit.
.TP
.I /var/lib/prometheus\-stack/
Data: databases (postgres/), the object store (objects/), generated secrets
(secrets/), the internal CA (pki/) and bundles. Purging the package keeps it.
.TP
.I /run/prometheus\-stack/control.sock
Control socket (mode 0660, group prometheus\-stack) used by status, logs, start,
stop, restart and reload.
.TP
.I /usr/lib/systemd/system/prometheus\-stack.service
The systemd unit. \fBsystemctl reload prometheus\-stack\fR sends SIGHUP, like
\fBprometheus\-stack reload\fR; the daemon logs to the journal
(\fBjournalctl \-u prometheus\-stack\fR).
.SH SEE ALSO
\fBsystemctl\fR(1), \fBjournalctl\fR(1), \fBpodman\fR(1)
"#;

/// Prints the main page, or writes every page into `out_dir`.
pub fn man(out_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    match out_dir {
        None => main_page(&mut std::io::stdout())?,
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), dir)
                .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
            // generate_to wrote the main page without FILES: replace it.
            let path = dir.join("prometheus-stack.1");
            let mut f = std::fs::File::create(&path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            main_page(&mut f)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main_page(w: &mut dyn Write) -> anyhow::Result<()> {
    clap_mangen::Man::new(Cli::command()).render(w)?;
    w.write_all(FILES.as_bytes())?;
    Ok(())
}
