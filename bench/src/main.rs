//! `cargo run --release -p sluice-bench -- [SCENARIO…] [--scale F] [--out DIR]`
//!
//! Runs each scenario direct to the mock provider and through sluice (and through sluice again
//! with a feature on, for the scenarios that compare one), prints a table, and writes
//! `DIR/report.json` and `DIR/report.md`.

use std::io::Write;
use std::path::PathBuf;

use clap::Parser;
use serde_json::Value;
use sluice_bench::{
    idle_soak, load::Mode, markdown, process, run_scenario, scenarios, soak_markdown, stream_soak,
};

/// The idle-connection soak's name on the command line and in reports.
const SOAK: &str = "idle-soak";
/// sluice's client timeouts (idle and header) during the soak.
const SOAK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Parser)]
#[command(
    name = "sluice-bench",
    about = "Side-by-side load tests: direct to a mock provider vs through sluice"
)]
struct Args {
    /// Scenarios to run (default: all): small, open-loop, streams-1k, streams-10k, failover,
    /// translation, guardrails, cache, ledger, limits, idle-soak, and `soak` (60 minutes of
    /// steady load, memory sampled; only when named).
    scenarios: Vec<String>,
    /// Shrink concurrency and duration by this factor (e.g. 0.1 for a quick look).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Where to write report.json and report.md.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    // Stopped by a signal, the run is dropped: the servers it started (mock, sluice, nginx,
    // Redis, PostgreSQL) are stopped by their guards instead of outliving the bench.
    tokio::select! {
        done = run(args) => done,
        signal = stopped() => Err(format!("stopped by {signal}; the servers it started are stopped")),
    }
}

/// Resolves with the name of the first SIGINT or SIGTERM.
async fn stopped() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

async fn run(args: Args) -> Result<(), String> {
    if !(args.scale > 0.0 && args.scale <= 1.0) {
        return Err("--scale must be in (0, 1]".into());
    }
    let all = scenarios(args.scale);
    for name in &args.scenarios {
        if name != SOAK && name != stream_soak::NAME && !all.iter().any(|s| s.name == name) {
            return Err(format!("unknown scenario {name}"));
        }
    }
    let soak = args.scenarios.is_empty() || args.scenarios.iter().any(|n| n == SOAK);
    // An hour long at full scale: run only when asked for.
    let long_soak = args.scenarios.iter().any(|n| n == stream_soak::NAME);
    let chosen: Vec<_> = all
        .into_iter()
        .filter(|s| args.scenarios.is_empty() || args.scenarios.iter().any(|n| n == s.name))
        .collect();
    let nofile = process::raise_nofile();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "sluice-bench: {cores} cores, open-file limit {nofile}, scale {}",
        args.scale
    );
    let mut reports: Vec<Value> = Vec::new();
    for s in &chosen {
        let clients = match s.mode {
            Mode::Closed { concurrency } => concurrency,
            Mode::Open { max_in_flight, .. } => max_in_flight,
        };
        // Each client needs a socket here, one in sluice and one to the mock: about 3 per client.
        let needed = clients as u64 * 3 + 256;
        if nofile < needed {
            println!(
                "  warning: {} wants about {needed} open files but the limit is {nofile}; \
                 expect connection errors (raise it with `ulimit -n {needed}`)",
                s.name
            );
        }
        println!("\n== {} — {}", s.name, s.description);
        let name = s.name;
        let progress = move |phase: &str, done: u64, failed: u64, in_flight: usize| {
            print!(
                "\r  {name}: {phase}: {done} done, {failed} failed, {in_flight} in flight      "
            );
            let _ = std::io::stdout().flush();
        };
        let mut report = run_scenario(s, &progress).await?;
        println!();
        let json = report.to_json();
        println!("{}", markdown(&json));
        reports.push(json);
    }
    if soak {
        let connections = ((10_000.0 * args.scale) as usize).max(10);
        println!(
            "\n== {SOAK} — {connections} idle client connections, closed by sluice's timeouts"
        );
        let r = idle_soak(connections, SOAK_TIMEOUT).await?;
        println!("{}", soak_markdown(&r));
        reports.push(r);
    }
    if long_soak {
        println!(
            "\n== {} — steady mixed load, memory sampled",
            stream_soak::NAME
        );
        let r = stream_soak::stream_soak(args.scale).await?;
        println!("{}", stream_soak::markdown(&r));
        reports.push(r);
    }
    std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
    let all = serde_json::json!({
        "date": humantime_now(),
        "cores": cores,
        "scale": args.scale,
        "scenarios": reports,
    });
    std::fs::write(
        args.out.join("report.json"),
        serde_json::to_vec_pretty(&all).unwrap(),
    )
    .map_err(|e| e.to_string())?;
    let md: String = all["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            if r["scenario"] == SOAK {
                soak_markdown(r)
            } else if r["scenario"] == stream_soak::NAME {
                stream_soak::markdown(r)
            } else {
                markdown(r)
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(args.out.join("report.md"), md).map_err(|e| e.to_string())?;
    println!("reports written to {}", args.out.display());
    Ok(())
}

fn humantime_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("unix {secs}")
}
