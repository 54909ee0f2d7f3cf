//! The command line: `run` is the daemon; every other command is a one-shot tool or a
//! client of the daemon's control socket.

mod backup;
mod bundle;
mod ca;
mod check;
mod doctor;
mod export;
pub mod gpu;
mod man;
mod run;
mod secrets;
mod task;
mod units;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Runs a private LobeChat stack (PostgreSQL, S3, Logto, LobeChat) behind its own TLS proxy.
#[derive(Parser, Debug)]
#[command(name = "prometheus-stack", version, about, long_about = LONG_ABOUT)]
pub struct Cli {
    /// Config file [default: /etc/prometheus-stack/stack.toml, else the embedded default]
    #[arg(long, short = 'c', global = true, env = "PROMETHEUS_STACK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Control socket of a running daemon [default: from the config]
    #[arg(long, global = true)]
    pub socket: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

const LONG_ABOUT: &str = "\
Runs a private LobeChat stack (PostgreSQL, S3, Logto, LobeChat) from one TOML file: \
starts units in dependency order behind health gates, restarts them with backoff, \
stops them cleanly, and answers a control socket.

Config: --config FILE, else /etc/prometheus-stack/stack.toml, else an embedded default \
for local use (data in ./prometheus-stack-data, ports above 1024).

Not built yet: restoring objects in the same run as the files when the object store is \
not running (restore says what to run once it is); a dedicated S3 access key for \
LobeChat (it uses the object store's root key, and `status` says so); a non-root default \
user for native units other than postgres (set `user = \"prometheus-stack\"`).

Logto's console account is `admin`, made at provisioning; its password: `secrets show \
logto-admin-password` (root). Logto's ports 3001/3002 listen on 127.0.0.1 only.";

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon in the foreground (systemd runs this)
    Run,
    /// Validate the config; exit 1 listing every problem with its key and line
    Check,
    /// Check the running installation end to end: one line per problem with its fix (exit 1 on problems)
    Doctor {
        /// JSON instead of lines
        #[arg(long)]
        json: bool,
    },
    /// Print the resolved plan (secrets shown as ${secret:NAME})
    ShowConfig {
        /// JSON instead of the readable summary
        #[arg(long)]
        json: bool,
    },
    /// Show each unit's state
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Start units (also clears `failed`)
    Start { units: Vec<String> },
    /// Stop units
    Stop { units: Vec<String> },
    /// Restart units
    Restart { units: Vec<String> },
    /// Print a unit's recent output
    Logs {
        unit: String,
        /// Keep printing new lines
        #[arg(short, long)]
        follow: bool,
        /// Number of lines
        #[arg(short = 'n', long, default_value_t = 100)]
        lines: usize,
    },
    /// Re-read the config and restart only what changed
    Reload,
    /// GPU memory per card and per unit
    Gpu {
        #[arg(long)]
        json: bool,
    },
    /// Internal CA: certificate path and fingerprint to trust; `ca rotate` replaces it
    Ca {
        #[command(subcommand)]
        action: Option<ca::CaAction>,
    },
    /// The secrets store
    Secrets {
        #[command(subcommand)]
        action: SecretsCmd,
    },
    /// Offline bundles of images and artifacts for air-gapped installs
    Bundle {
        #[command(subcommand)]
        action: BundleCmd,
    },
    /// Export the plan to another engine: `export kubernetes` writes manifests
    Export {
        #[command(subcommand)]
        target: export::ExportTarget,
    },
    /// Run one oneshot's task or wait for a unit, outside the daemon (Kubernetes pods)
    Task {
        #[command(subcommand)]
        action: task::TaskCmd,
    },
    /// Back up config, secrets, CA, PostgreSQL and every object into one verified file
    Backup {
        /// Write here instead of [backup].dir/prometheus-stack-DATE.tar.zst
        #[arg(long)]
        to: Option<PathBuf>,
        /// The package upgrade's step: back up only when [backup].before_upgrade is true
        /// and the daemon runs (its control socket answers)
        #[arg(long)]
        before_upgrade: bool,
        #[command(subcommand)]
        action: Option<BackupCmd>,
    },
    /// Restore a backup into an empty data dir (verifies every checksum first)
    Restore {
        file: PathBuf,
        /// Target data dir [default: the backup's [stack].data_dir]
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Replace the secrets, CA and PostgreSQL data a non-empty data dir holds
        #[arg(long)]
        force: bool,
        /// Only the buckets and objects (once the stack's object store runs)
        #[arg(long)]
        objects_only: bool,
    },
    /// Print shell completions
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff)
    #[command(hide = true)]
    Man {
        /// Write every page (one per subcommand too) into this folder instead
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
}

/// `secrets …`
#[derive(Subcommand, Debug)]
pub enum SecretsCmd {
    /// Names and ages (never values)
    List,
    /// Replace a secret everywhere it is used and restart its consumers
    Rotate { name: String },
    /// Print one secret's value (e.g. logto-admin-password); reads the store, so root only
    Show { name: String },
}

/// `backup …`
#[derive(Subcommand, Debug)]
pub enum BackupCmd {
    /// Backups in [backup].dir, newest first
    List,
    /// Read a backup end to end and check every entry against its manifest
    Verify { file: PathBuf },
}

/// `bundle …`
#[derive(Subcommand, Debug)]
pub enum BundleCmd {
    /// Save every image the plan needs (and [bundle].artifacts) into OUT.tar
    Create { out: PathBuf },
    /// Verify every checksum, then load the images
    Import { file: PathBuf },
    /// What the plan needs against what is present
    List,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("prometheus-stack: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = Ctx {
        config: cli.config.clone(),
        socket: cli.socket.clone(),
    };
    match cli.command {
        Command::Check => check::check(&ctx),
        Command::Doctor { json } => doctor::doctor(&ctx, json),
        Command::Bundle { action } => bundle::bundle(&ctx, action),
        Command::Backup {
            to,
            before_upgrade,
            action,
        } => backup::backup(&ctx, to, before_upgrade, action),
        Command::Restore {
            file,
            data_dir,
            force,
            objects_only,
        } => backup::restore(
            &file,
            crate::backup::RestoreOptions {
                data_dir,
                config: None,
                force,
                objects_only,
            },
        ),
        Command::Run => run::run(&ctx),
        Command::Status { json } => units::status(&ctx, json),
        Command::Gpu { json } => gpu::gpu(&ctx, json),
        Command::Start { units: u } => units::action(&ctx, "start", &u),
        Command::Stop { units: u } => units::action(&ctx, "stop", &u),
        Command::Restart { units: u } => units::action(&ctx, "restart", &u),
        Command::Logs {
            unit,
            follow,
            lines,
        } => units::logs(&ctx, &unit, follow, lines),
        Command::Reload => units::reload(&ctx),
        Command::Secrets { action } => secrets::run(&ctx, action),
        Command::ShowConfig { json } => check::show_config(&ctx, json),
        Command::Ca { action } => ca::ca(&ctx, action),
        Command::Export { target } => export::export(&ctx, target),
        Command::Task { action } => task::task(&ctx, action),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "prometheus-stack",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out_dir } => man::man(out_dir.as_deref()),
    }
}

/// Global options every command needs.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub config: Option<PathBuf>,
    pub socket: Option<PathBuf>,
}

impl Ctx {
    /// Which config this invocation uses: --config, else the system file, else the embedded default.
    pub fn config_choice(&self) -> ConfigChoice {
        if let Some(p) = &self.config {
            return ConfigChoice::File(p.clone());
        }
        let sys = PathBuf::from(crate::config::DEFAULT_PATH);
        if sys.exists() {
            ConfigChoice::File(sys)
        } else {
            ConfigChoice::Embedded
        }
    }

    /// Builds the plan this invocation uses.
    pub fn plan(
        &self,
        opts: crate::plan::BuildOptions,
    ) -> Result<crate::plan::Plan, crate::config::ConfigError> {
        match self.config_choice() {
            ConfigChoice::File(p) => crate::plan::build_from_file(&p, opts),
            ConfigChoice::Embedded => {
                let (cfg, src) = crate::config::load_str(
                    "<embedded default>",
                    None,
                    crate::config::DEFAULT_CONFIG.to_string(),
                )?;
                crate::plan::build(&cfg, &src, opts)
            }
        }
    }
}

/// Where the config comes from.
#[derive(Debug, Clone)]
pub enum ConfigChoice {
    File(PathBuf),
    Embedded,
}
