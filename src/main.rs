//! `sluice run -c FILE` starts the gateway; `sluice check -c FILE` validates a config.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use sluice::config;
use sluice::server::{self, RunFlags};

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "An LLM egress gateway built on Pingora"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        /// The config file.
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
        /// Take over the listening sockets of a running instance (zero-downtime upgrade).
        #[arg(short = 'u', long)]
        upgrade: bool,
        /// Run in the background.
        #[arg(short = 'd', long)]
        daemon: bool,
    },
    /// Validate a config file and exit: 0 when it is valid, 1 otherwise.
    Check {
        /// The config file.
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    sluice::telemetry::logger::init();
    match cli.command {
        Command::Check { config } => match config::load(&config) {
            Ok(cfg) => {
                println!(
                    "{}: OK ({} keys, {} providers, {} models)",
                    config.display(),
                    cfg.keys.len(),
                    cfg.providers.len(),
                    cfg.models.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: config error: {e}", config.display());
                ExitCode::FAILURE
            }
        },
        Command::Run {
            config,
            upgrade,
            daemon,
        } => {
            let cfg = match config::load(&config) {
                Ok(cfg) => cfg,
                Err(e) => {
                    eprintln!("{}: config error: {e}", config.display());
                    return ExitCode::FAILURE;
                }
            };
            log::info!(
                "sluice {} listening on {} (admin on {})",
                env!("CARGO_PKG_VERSION"),
                cfg.listen,
                cfg.admin.listen
            );
            match server::build(cfg, RunFlags { upgrade, daemon }) {
                Ok(server) => server.run_forever(),
                Err(e) => {
                    eprintln!("sluice: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
