//! sluice's bench: each scenario runs the same load directly against the mock provider and
//! through sluice, in the same run, and reports both with sluice's figures as ratios.
//!
//! Everything runs on this machine over loopback: the mock provider (`sluice-mock`, a child
//! process), the load generator (this process) and sluice (a child process, sampled for RSS
//! and CPU).

pub mod load;
pub mod process;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use load::{LoadSpec, Measured, Mode};

/// A scenario, at the scale given.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub description: &'static str,
    pub mode: Mode,
    pub duration: Duration,
    pub stream: bool,
    /// Chunks in each streamed answer.
    pub chunks: usize,
    /// Bytes of text in each chunk.
    pub chunk_bytes: usize,
    pub gap: Duration,
    pub ttft: Duration,
    /// Extra dead deployment in front of the mock (failover scenario).
    pub dead_deployment: bool,
    /// sluice reaches the mock through its Anthropic Messages API (translation both ways);
    /// the direct run uses the mock's OpenAI API.
    pub anthropic: bool,
    pub ramp: Duration,
}

/// The scenarios, at full scale. `scale` in (0, 1] shrinks concurrency and duration.
pub fn scenarios(scale: f64) -> Vec<Scenario> {
    let c = |n: usize| ((n as f64 * scale).round() as usize).max(2);
    let d = |s: f64| Duration::from_secs_f64((s * scale).max(1.0));
    vec![
        Scenario {
            name: "small",
            description: "small non-stream completions, 64 clients, closed loop (max throughput)",
            mode: Mode::Closed { concurrency: c(64) },
            duration: d(10.0),
            stream: false,
            chunks: 8,
            chunk_bytes: 6,
            gap: Duration::ZERO,
            ttft: Duration::ZERO,
            dead_deployment: false,
            anthropic: false,
            ramp: Duration::ZERO,
        },
        Scenario {
            name: "open-loop",
            description: "small non-stream completions at a fixed 2,000 requests/s (open loop)",
            mode: Mode::Open {
                rate: 2000.0 * scale.max(0.05),
                max_in_flight: c(2000),
            },
            duration: d(10.0),
            stream: false,
            chunks: 8,
            chunk_bytes: 6,
            gap: Duration::ZERO,
            ttft: Duration::ZERO,
            dead_deployment: false,
            anthropic: false,
            ramp: Duration::ZERO,
        },
        Scenario {
            name: "streams-1k",
            description: "1,000 concurrent streams, 20 chunks 50 ms apart",
            mode: Mode::Closed {
                concurrency: c(1000),
            },
            duration: d(10.0),
            stream: true,
            chunks: 20,
            chunk_bytes: 16,
            gap: Duration::from_millis(50),
            ttft: Duration::from_millis(100),
            dead_deployment: false,
            anthropic: false,
            ramp: Duration::from_secs_f64(1.0 * scale),
        },
        Scenario {
            name: "streams-10k",
            description: "10,000 concurrent long-lived streams (slow tokens), memory per stream",
            mode: Mode::Closed {
                concurrency: c(10_000),
            },
            duration: d(20.0),
            stream: true,
            chunks: 60,
            chunk_bytes: 16,
            gap: Duration::from_millis(250),
            ttft: Duration::from_millis(200),
            dead_deployment: false,
            anthropic: false,
            ramp: Duration::from_secs_f64(4.0 * scale),
        },
        Scenario {
            name: "failover",
            description:
                "small completions, 64 clients, first deployment dead (connection refused)",
            mode: Mode::Closed { concurrency: c(64) },
            duration: d(10.0),
            stream: false,
            chunks: 8,
            chunk_bytes: 6,
            gap: Duration::ZERO,
            ttft: Duration::ZERO,
            dead_deployment: true,
            anthropic: false,
            ramp: Duration::ZERO,
        },
        Scenario {
            name: "translation",
            description:
                "200 concurrent streams, OpenAI client → Anthropic provider (translated both ways)",
            mode: Mode::Closed {
                concurrency: c(200),
            },
            duration: d(10.0),
            stream: true,
            chunks: 20,
            chunk_bytes: 16,
            gap: Duration::from_millis(20),
            ttft: Duration::from_millis(100),
            dead_deployment: false,
            anthropic: true,
            ramp: Duration::from_secs_f64(0.5 * scale),
        },
    ]
}

/// Scenarios named by the issue tracker that need features sluice does not have yet.
pub const NOT_YET: &[(&str, &str)] = &[(
    "guardrails",
    "output guardrails on streams (needs guardrails)",
)];

/// One target's results.
#[derive(Debug)]
pub struct TargetResult {
    pub measured: Measured,
    pub process: Option<process::Usage>,
}

/// Both targets' results and the report.
#[derive(Debug)]
pub struct ScenarioReport {
    pub scenario: Scenario,
    pub direct: TargetResult,
    pub sluice: TargetResult,
}

/// Finds the sluice binary beside this executable (`target/release/`).
pub fn sluice_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    for dir in exe.ancestors().skip(1).take(3) {
        let candidate = dir.join("sluice");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(
        "the sluice binary was not found beside the bench: run `cargo build --release` first"
            .into(),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

const KEY: &str = "sk-bench-gateway-key";

struct Gateway {
    child: tokio::process::Child,
    port: u16,
    _dir: tempfile_dir::Dir,
}

mod tempfile_dir {
    /// A temporary directory removed on drop (no extra dependency for the bench binary).
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

async fn start_gateway(bin: &Path, mock_port: u16, s: &Scenario) -> Result<Gateway, String> {
    let dead = s.dead_deployment;
    let dir = std::env::temp_dir().join(format!(
        "sluice-bench-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let dir = tempfile_dir::Dir(dir);
    let port = free_port();
    let dead_provider = if dead {
        format!(
            "  dead: {{ kind: openai_compatible, base_url: \"http://127.0.0.1:{}/v1\" }}\n",
            free_port()
        )
    } else {
        String::new()
    };
    let dead_deployment = if dead {
        "    - { provider: dead, model: mock-model }\n"
    } else {
        ""
    };
    let cfg = format!(
        "listen: 127.0.0.1:{port}\nadmin: {{ listen: 127.0.0.1:{admin} }}\nallow_inline_secrets: true\n\
         keys: [ {{ name: bench, key: {KEY} }} ]\n\
         providers:\n  mock: {{ {mock_provider} }}\n{dead_provider}\
         models:\n  gpt-4o-mini:\n{dead_deployment}    - {{ provider: mock, model: mock-model }}\n\
         server: {{ pid_file: {pid}, upgrade_sock: {sock}, grace_period: 1s, graceful_shutdown_timeout: 1s }}\n\
         upstream: {{ keepalive_pool_size: 20000 }}\n",
        admin = free_port(),
        mock_provider = if s.anthropic {
            format!("kind: anthropic, base_url: \"http://127.0.0.1:{mock_port}\", api_key: sk-bench-provider")
        } else {
            format!("kind: openai_compatible, base_url: \"http://127.0.0.1:{mock_port}/v1\"")
        },
        pid = dir.0.join("pid").display(),
        sock = dir.0.join("sock").display(),
    );
    let path = dir.0.join("sluice.yaml");
    std::fs::write(&path, cfg).map_err(|e| e.to_string())?;
    let child = tokio::process::Command::new(bin)
        .args(["run", "-c"])
        .arg(&path)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    wait_for_port(port).await?;
    Ok(Gateway {
        child,
        port,
        _dir: dir,
    })
}

async fn wait_for_port(port: u16) -> Result<(), String> {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(format!("nothing listens on port {port} after 5 s"))
}

/// Runs one scenario: direct to the mock, then through sluice.
pub async fn run_scenario(
    s: &Scenario,
    progress: &(dyn Fn(&str, u64, u64, usize) + Sync),
) -> Result<ScenarioReport, String> {
    let bin = sluice_binary()?;
    let word = "x".repeat(s.chunk_bytes.saturating_sub(1).max(1));
    let reply = vec![word; s.chunks.saturating_sub(1).max(1)].join(" ");
    // The mock runs in its own process so that its sockets do not count against the load
    // generator's open-file limit.
    let mock_port = free_port();
    let mut mock = tokio::process::Command::new(bin.with_file_name("sluice-mock"))
        .args(["--listen", &format!("127.0.0.1:{mock_port}")])
        .args(["--ttft-ms", &s.ttft.as_millis().to_string()])
        .args(["--gap-ms", &s.gap.as_millis().to_string()])
        .args(["--reply", &reply])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start sluice-mock: {e}"))?;
    wait_for_port(mock_port).await?;
    let body = json!({
        "model": "gpt-4o-mini",
        "stream": s.stream,
        "messages": [{"role": "user", "content": "Say hello"}]
    })
    .to_string();
    let spec = |port: u16, key: Option<&str>, label: &str| LoadSpec {
        port,
        mode: s.mode,
        duration: s.duration,
        stream: s.stream,
        request: std::sync::Arc::new(load::post_request(port, "/v1/chat/completions", key, &body)),
        ramp: s.ramp,
        timeout: s.ttft + s.gap * s.chunks as u32 + Duration::from_secs(30),
        label: label.to_string(),
    };

    let direct_spec = spec(mock_port, None, "direct");
    let direct = load::run(&direct_spec, &|d, f, i| progress("direct to mock", d, f, i)).await;

    let mut gw = start_gateway(&bin, mock_port, s).await?;
    let pid = gw.child.id().ok_or("sluice exited")?;
    let sampler = process::Sampler::start(pid);
    let via_spec = spec(gw.port, Some(KEY), "sluice");
    let via = load::run(&via_spec, &|d, f, i| progress("through sluice", d, f, i)).await;
    let usage = sampler.stop().await;
    let _ = gw.child.start_kill();
    let _ = mock.start_kill();
    Ok(ScenarioReport {
        scenario: s.clone(),
        direct: TargetResult {
            measured: direct,
            process: None,
        },
        sluice: TargetResult {
            measured: via,
            process: Some(usage),
        },
    })
}

fn summary(m: &mut Measured) -> Value {
    let secs = m.elapsed.as_secs_f64().max(1e-9);
    json!({
        "requests_ok": m.ok,
        "errors": m.error_count(),
        "errors_by_kind": m.errors,
        "throughput_rps": m.ok as f64 / secs,
        "latency_ms": {
            "p50": load::percentile_ms(&mut m.latency, 50.0),
            "p90": load::percentile_ms(&mut m.latency, 90.0),
            "p99": load::percentile_ms(&mut m.latency, 99.0),
        },
        "ttft_ms": {
            "p50": load::percentile_ms(&mut m.ttft, 50.0),
            "p99": load::percentile_ms(&mut m.ttft, 99.0),
        },
        "chunk_gap_ms": {
            "p50": load::percentile_ms(&mut m.gaps, 50.0),
            "p99": load::percentile_ms(&mut m.gaps, 99.0),
        },
        "peak_in_flight": m.peak_in_flight,
        "elapsed_s": secs,
    })
}

fn ratio(a: &Value, b: &Value) -> Value {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if y > 0.0 => json!((x / y * 100.0).round() / 100.0),
        _ => Value::Null,
    }
}

impl ScenarioReport {
    /// The report as JSON: both targets, sluice's process usage, and ratios sluice/direct.
    pub fn to_json(&mut self) -> Value {
        let d = summary(&mut self.direct.measured);
        let v = summary(&mut self.sluice.measured);
        let mut ratios = json!({
            "throughput": ratio(&v["throughput_rps"], &d["throughput_rps"]),
            "latency_p50": ratio(&v["latency_ms"]["p50"], &d["latency_ms"]["p50"]),
            "latency_p99": ratio(&v["latency_ms"]["p99"], &d["latency_ms"]["p99"]),
        });
        if self.scenario.stream {
            ratios["ttft_p50"] = ratio(&v["ttft_ms"]["p50"], &d["ttft_ms"]["p50"]);
            ratios["ttft_p99"] = ratio(&v["ttft_ms"]["p99"], &d["ttft_ms"]["p99"]);
        }
        let process = self.sluice.process.as_ref().map(|u| {
            let streams = v["peak_in_flight"].as_u64().unwrap_or(0).max(1);
            json!({
                "rss_baseline_kib": u.rss_baseline_kib,
                "rss_peak_kib": u.rss_peak_kib,
                "rss_per_in_flight_request_kib": (u.rss_peak_kib.saturating_sub(u.rss_baseline_kib)) as f64 / streams as f64,
                "cpu_seconds": u.cpu_seconds,
            })
        });
        json!({
            "scenario": self.scenario.name,
            "description": self.scenario.description,
            "direct": d,
            "sluice": v,
            "sluice_process": process,
            "ratios_sluice_over_direct": ratios,
        })
    }
}

/// The report as a markdown section.
pub fn markdown(r: &Value) -> String {
    let f = |v: &Value| match v.as_f64() {
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.2}"),
        None => "–".into(),
    };
    let row = |name: &str, t: &Value| {
        format!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} |\n",
            f(&t["throughput_rps"]),
            f(&t["latency_ms"]["p50"]),
            f(&t["latency_ms"]["p99"]),
            f(&t["ttft_ms"]["p50"]),
            f(&t["ttft_ms"]["p99"]),
            t["errors"],
            t["peak_in_flight"],
        )
    };
    let ratios = &r["ratios_sluice_over_direct"];
    let mut out = format!(
        "### {} — {}\n\n| target | req/s | p50 ms | p99 ms | TTFT p50 ms | TTFT p99 ms | errors | peak in flight |\n|---|---|---|---|---|---|---|---|\n",
        r["scenario"].as_str().unwrap_or(""),
        r["description"].as_str().unwrap_or("")
    );
    out += &row("direct to mock", &r["direct"]);
    out += &row("through sluice", &r["sluice"]);
    out += &format!(
        "| sluice / direct | {}x | {}x | {}x | {}x | {}x | | |\n",
        f(&ratios["throughput"]),
        f(&ratios["latency_p50"]),
        f(&ratios["latency_p99"]),
        f(&ratios["ttft_p50"]),
        f(&ratios["ttft_p99"]),
    );
    if let Some(p) = r["sluice_process"].as_object() {
        out += &format!(
            "\nsluice process: RSS {} KiB idle → {} KiB peak ({} KiB per in-flight request), {} s CPU.\n",
            p["rss_baseline_kib"],
            p["rss_peak_kib"],
            f(&p["rss_per_in_flight_request_kib"]),
            f(&p["cpu_seconds"]),
        );
    }
    out
}
