//! `sluice run -c FILE` starts the gateway; `sluice check -c FILE` validates a config;
//! `sluice usage -c FILE` reports from the usage ledger; `sluice guardrails test -c FILE
//! --corpus FILE.jsonl` tests the guardrails against a labelled corpus.

use std::path::{Path, PathBuf};
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
    /// Validate a config file and exit: 0 when it is valid, 1 otherwise. Every error is
    /// reported. `${ENV}` and `file:` references are checked for syntax, not read, unless
    /// --resolve-secrets is given.
    Check {
        /// The config file.
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
        /// Also read every environment variable and file the config refers to, and report
        /// the missing ones (as `sluice run` would).
        #[arg(long)]
        resolve_secrets: bool,
    },
    /// Usage and cost from the usage ledger, grouped.
    Usage {
        /// The config file (its `usage:` names the ledger).
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
        /// How far back: 24h, 7d, 30m, …
        #[arg(long, default_value = "24h")]
        since: String,
        /// Group by any of key, model, provider, day, hour (comma-separated).
        #[arg(long, default_value = "")]
        by: String,
        /// table, json or csv.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Managed gateway keys, in the usage store: create, list, show, revoke, rotate.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Guardrail tools: test the configured guardrails against a labelled corpus.
    Guardrails {
        #[command(subcommand)]
        command: GuardrailsCommand,
    },
}

#[derive(Subcommand)]
enum GuardrailsCommand {
    /// Run every configured guardrail over a labelled JSONL corpus, offline (no provider, no
    /// network), and print detection and false-positive rates per label and per guardrail.
    /// Exit status: 0, 1 when a --min-detection / --max-false-positive threshold is not met,
    /// 2 on bad input.
    Test {
        /// The config file (its `guardrails:` are tested).
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
        /// The corpus: one `{"text", "label", "expect"?, "direction"?}` object per line.
        #[arg(long, value_name = "FILE.jsonl")]
        corpus: PathBuf,
        /// List the missed cases and the false positives.
        #[arg(long)]
        show_misses: bool,
        /// table or json.
        #[arg(long, default_value = "table")]
        format: String,
        /// Lowest detection rate, in percent, every `detect` label must reach.
        #[arg(long, value_name = "PERCENT")]
        min_detection: Option<f64>,
        /// Highest false-positive rate, in percent, over the `pass` cases.
        #[arg(long, value_name = "PERCENT")]
        max_false_positive: Option<f64>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; its secret is printed once, alone on the last line.
    Create {
        /// The config file (its `usage:` names the key store).
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
        #[command(flatten)]
        args: sluice::control::cli::CreateArgs,
    },
    /// List every key: the config file's and the managed ones.
    List {
        /// The config file (its `usage:` names the key store).
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
        /// table or json.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Show one key as JSON.
    Show {
        /// The config file (its `usage:` names the key store).
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
        name: String,
    },
    /// Revoke a managed key.
    Revoke {
        /// The config file (its `usage:` names the key store).
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
        name: String,
    },
    /// Give a managed key a new secret; the old one works for the grace period.
    Rotate {
        /// The config file (its `usage:` names the key store).
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
        name: String,
        /// How long the old secret keeps working (default 1h; 0s ends it now).
        #[arg(long)]
        grace: Option<String>,
    },
}

/// Runs a `sluice keys` command.
fn keys(command: KeysCommand) -> Result<String, String> {
    use sluice::control::cli;
    match command {
        KeysCommand::Create { config, args } => cli::create(&config, args),
        KeysCommand::List { config, format } => cli::list(&config, &format),
        KeysCommand::Show { config, name } => cli::show(&config, &name),
        KeysCommand::Revoke { config, name } => cli::revoke(&config, &name),
        KeysCommand::Rotate {
            config,
            name,
            grace,
        } => cli::rotate(&config, &name, grace.as_deref()),
    }
}

/// Prints every config error, one per line, each prefixed with the file.
fn print_errors(config: &Path, errors: &config::ConfigErrors) {
    for e in errors {
        eprintln!("{}: config error: {e}", config.display());
    }
}

/// `sluice check`: every error of the file, or a summary and the unpriced-models warning.
fn check(config: &Path, resolve_secrets: bool) -> ExitCode {
    let cfg = match config::load_with(config, &config::LoadOptions { resolve_secrets }) {
        Ok(cfg) => cfg,
        Err(errors) => {
            print_errors(config, &errors);
            let n = errors.len();
            eprintln!("{n} error{}", if n == 1 { "" } else { "s" });
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{}: OK ({} keys, {} providers, {} models)",
        config.display(),
        cfg.keys.len(),
        cfg.providers.len(),
        cfg.models.len()
    );
    let models: Vec<String> = cfg.models.keys().cloned().collect();
    let unpriced = cfg.rate_limits.without_price(&models);
    if !unpriced.is_empty() {
        eprintln!(
            "warning: no price for {}: their requests cost $0 in budgets and the \
             usage ledger; give them one under `pricing:` (the bundled price table, \
             of {}, does not know their deployments' models)",
            unpriced.join(", "),
            sluice::limits::prices::PRICES_AS_OF
        );
    }
    ExitCode::SUCCESS
}

/// `sluice usage`: the same totals as the admin listener's `GET /usage`.
fn usage(config: &std::path::Path, since: &str, by: &str, format: &str) -> Result<String, String> {
    use sluice::ledger::query::{parse_groups, parse_since, to_csv, to_json, to_table};
    let cfg = config::load(config).map_err(|errors| {
        let lines: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: config error: {e}", config.display()))
            .collect();
        lines.join("\nsluice usage: ")
    })?;
    let u = cfg.usage.ok_or_else(|| {
        format!(
            "{}: no `usage:` section: the ledger is off",
            config.display()
        )
    })?;
    let since = parse_since(since).map_err(|e| format!("--since: {e}"))?;
    let by = parse_groups(by).map_err(|e| format!("--by: {e}"))?;
    let rows = sluice::ledger::store::open_read_only(&u.store)?.summary(since, &by)?;
    match format {
        "table" => Ok(to_table(&by, &rows)),
        "json" => Ok(to_json(&by, &rows).to_string() + "\n"),
        "csv" => Ok(to_csv(&by, &rows)),
        other => Err(format!(
            "--format: unknown format {other:?} (table, json or csv)"
        )),
    }
}

/// `sluice guardrails test`: the report, and the thresholds not met; `Err` on bad input.
fn guardrails_test(command: GuardrailsCommand) -> Result<(String, Vec<String>), String> {
    use sluice::guardrails::corpus;
    let GuardrailsCommand::Test {
        config,
        corpus: file,
        show_misses,
        format,
        min_detection,
        max_false_positive,
    } = command;
    if !matches!(format.as_str(), "table" | "json") {
        return Err(format!(
            "--format: unknown format {format:?} (table or json)"
        ));
    }
    for (flag, v) in [
        ("--min-detection", min_detection),
        ("--max-false-positive", max_false_positive),
    ] {
        if v.is_some_and(|v| !(0.0..=100.0).contains(&v)) {
            return Err(format!("{flag}: must be a percentage between 0 and 100"));
        }
    }
    let opts = config::LoadOptions {
        resolve_secrets: false,
    };
    let cfg = config::load_with(&config, &opts).map_err(|errors| {
        let lines: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: config error: {e}", config.display()))
            .collect();
        lines.join("\n")
    })?;
    if cfg.guardrails.is_empty() {
        return Err(format!("{}: no guardrails configured", config.display()));
    }
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
    let cases = corpus::parse(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let report = corpus::run(&cfg.guardrails, &cases)?;
    let failures = report.failures(
        min_detection.map(|v| v / 100.0),
        max_false_positive.map(|v| v / 100.0),
    );
    let out = match format.as_str() {
        "json" => report.to_json(show_misses).to_string() + "\n",
        _ => report.to_table(show_misses),
    };
    Ok((out, failures))
}

/// jemalloc: a third less CPU per small request than glibc's allocator in the bench (its
/// arenas are not contended by frees from another thread), at about the same memory.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    sluice::telemetry::logger::init();
    match cli.command {
        Command::Check {
            config,
            resolve_secrets,
        } => check(&config, resolve_secrets),
        Command::Keys { command } => match keys(command) {
            Ok(out) => {
                print!("{out}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sluice keys: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Guardrails { command } => match guardrails_test(command) {
            Ok((out, failures)) => {
                print!("{out}");
                for f in &failures {
                    eprintln!("sluice guardrails test: {f}");
                }
                if failures.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("sluice guardrails test: {e}");
                ExitCode::from(2)
            }
        },
        Command::Usage {
            config,
            since,
            by,
            format,
        } => match usage(&config, &since, &by, &format) {
            Ok(out) => {
                print!("{out}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sluice usage: {e}");
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
                Err(errors) => {
                    print_errors(&config, &errors);
                    return ExitCode::FAILURE;
                }
            };
            log::info!(
                "sluice {} listening on {} (admin on {})",
                env!("CARGO_PKG_VERSION"),
                cfg.listen,
                cfg.admin.listen
            );
            match server::build(cfg, &config, RunFlags { upgrade, daemon }) {
                Ok(server) => {
                    server.run(pingora::server::RunArgs::default());
                    // The access log's last lines, queued while the server stopped.
                    sluice::telemetry::access::flush();
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("sluice: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
