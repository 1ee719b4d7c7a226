//! `sluice-mock`: a mock OpenAI-compatible provider, so sluice can be tried without a provider
//! account. `sluice-mock --listen 127.0.0.1:9999`, then run sluice with `conf/sluice.yaml`.

use std::time::Duration;

use clap::Parser;
use sluice_mock::{Behaviour, MockProvider};

#[derive(Parser)]
#[command(
    name = "sluice-mock",
    version,
    about = "A mock OpenAI-compatible LLM provider"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9999")]
    listen: String,
    /// Delay before each response header, in milliseconds.
    #[arg(long, default_value_t = 0)]
    ttft_ms: u64,
    /// Delay between stream chunks, in milliseconds.
    #[arg(long, default_value_t = 20)]
    gap_ms: u64,
    /// Fixed answer text (default: echo the last user message).
    #[arg(long)]
    reply: Option<String>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mock = MockProvider::start(
        &args.listen,
        Behaviour {
            reply: args.reply,
            ttft: Duration::from_millis(args.ttft_ms),
            gap: Duration::from_millis(args.gap_ms),
            expected_key: None,
            record: false,
        },
    )
    .await?;
    println!(
        "sluice-mock: OpenAI-compatible mock provider on {}",
        mock.url()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
