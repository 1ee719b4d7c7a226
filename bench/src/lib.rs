//! sluice's bench: each scenario runs the same load directly against the mock provider and
//! through sluice, in the same run, and reports both with sluice's figures as ratios.
//!
//! Everything runs on this machine over loopback: the mock provider (`sluice-mock`, a child
//! process), the load generator (this process) and sluice (a child process, sampled for RSS
//! and CPU).

pub mod load;
pub mod nginx;
pub mod postgres;
pub mod process;
mod soak;
pub mod stream_soak;

pub use soak::{idle_soak, soak_markdown};

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
    /// The mock answers with English prose (one word per chunk) instead of `xxxx` words.
    pub prose: bool,
    /// Also run the load through nginx `proxy_pass` in front of the same mock (the
    /// reverse-proxy baseline).
    pub nginx: bool,
    /// Further runs through sluice with a feature on, each compared with the first run
    /// through sluice (the feature off) as well as with the direct run.
    pub variants: &'static [Variant],
    /// About this many bytes of conversation as the prompt (a system message and turns of
    /// prose); 0: one short user message.
    pub prompt_bytes: usize,
}

/// A feature turned on in a further run through sluice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Output guardrails `secrets` and `pii`, action `redact`, on every answer.
    OutputGuardrails,
    /// Every built-in detector on input and output: `secrets` and `pii` (redact),
    /// `prompt_injection` (block).
    AllGuardrails,
    /// Rate, token and concurrency limits (never reached) in the in-process backend.
    LimitsMemory,
    /// The same limits in Redis (a `redis-server` child started by the bench).
    LimitsRedis,
    /// The usage ledger in an SQLite file (a fresh one per run, removed afterwards).
    LedgerSqlite,
    /// The usage ledger in PostgreSQL (a server started by the bench).
    LedgerPostgres,
    /// The response cache in memory: every request of the run is the same, so all but the
    /// first are hits.
    CacheMemory,
}

impl Variant {
    /// How the report names the run with this feature on.
    pub fn label(self) -> &'static str {
        match self {
            Variant::OutputGuardrails => "guardrails on",
            Variant::AllGuardrails => "guardrails: all, both ways",
            Variant::LimitsMemory => "limits: memory",
            Variant::LimitsRedis => "limits: redis",
            Variant::LedgerSqlite => "ledger: sqlite",
            Variant::LedgerPostgres => "ledger: postgres",
            Variant::CacheMemory => "cache hits",
        }
    }

    /// How the report names the run without it (the scenario's first run through sluice).
    pub fn off_label(self) -> &'static str {
        match self {
            Variant::OutputGuardrails | Variant::AllGuardrails => "guardrails off",
            Variant::LimitsMemory | Variant::LimitsRedis => "limits off",
            Variant::LedgerSqlite | Variant::LedgerPostgres => "ledger off",
            Variant::CacheMemory => "cache off (provider)",
        }
    }

    /// The prefix of the counters (see [`COUNTERS`]) that show what the feature did.
    fn counter_prefix(self) -> &'static str {
        match self {
            Variant::OutputGuardrails | Variant::AllGuardrails => "guardrail_",
            Variant::LimitsMemory | Variant::LimitsRedis => "rate_limit_",
            Variant::LedgerSqlite | Variant::LedgerPostgres => "usage_",
            Variant::CacheMemory => "cache_",
        }
    }

    /// The sluice config lines that turn the feature on (`url`: the Redis or PostgreSQL
    /// server's).
    fn config(self, url: Option<&str>) -> String {
        const LIMITS: &str = "default: { requests_per_minute: 100000000, \
            tokens_per_minute: 1000000000, max_concurrent: 100000 }";
        match self {
            Variant::OutputGuardrails => "guardrails:\n\
                 \x20 - { name: no-secrets, type: secrets, action: redact, apply_to: [output] }\n\
                 \x20 - { name: pii, type: pii, action: redact, apply_to: [output] }\n\
                 default_guardrails: [no-secrets, pii]\n"
                .to_string(),
            Variant::AllGuardrails => "guardrails:\n\
                 \x20 - { name: no-secrets, type: secrets, action: redact, apply_to: [input, output] }\n\
                 \x20 - { name: pii, type: pii, action: redact, apply_to: [input, output] }\n\
                 \x20 - { name: injection, type: prompt_injection, action: block, apply_to: [input, output] }\n\
                 default_guardrails: [no-secrets, pii, injection]\n"
                .to_string(),
            Variant::LimitsMemory => format!("limits: {{ backend: memory, {LIMITS} }}\n"),
            // A generous timeout: a healthy Redis answers in well under a millisecond, and
            // on a loaded machine a 50 ms one would turn scheduling delays into fail-open
            // admissions that skip Redis, so the run would no longer measure it.
            Variant::LimitsRedis => format!(
                "limits: {{ backend: redis, redis_url: \"{}\", redis_timeout: 1s, \
                 on_backend_error: fail_open, {LIMITS} }}\n",
                url.unwrap_or("redis://127.0.0.1:6379")
            ),
            Variant::LedgerSqlite => format!("usage:\n  path: {}\n", ledger_path().display()),
            Variant::CacheMemory => "cache: { backend: memory, ttl: 10m }\n".to_string(),
            Variant::LedgerPostgres => format!(
                "usage:\n  store: postgres\n  url: \"{}\"\n",
                url.unwrap_or("postgres://127.0.0.1/postgres")
            ),
        }
    }
}

/// The SQLite ledger of the bench's `ledger: sqlite` runs (in the temp directory).
pub fn ledger_path() -> PathBuf {
    std::env::temp_dir().join(format!("sluice-bench-{}-usage.db", std::process::id()))
}

/// Removes the bench's ledger and its WAL, shared-memory and spill files.
fn remove_ledger() {
    let db = ledger_path();
    for suffix in ["", "-wal", "-shm", ".spill"] {
        let mut p = db.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

impl Scenario {
    /// The name of the first run through sluice: "through sluice", or with the feature its
    /// variants turn on named as off.
    pub fn sluice_label(&self) -> String {
        match self.variants.first() {
            Some(v) => format!("through sluice, {}", v.off_label()),
            None => "through sluice".into(),
        }
    }
}

/// English prose of `words` words with a few numbers and no secrets or personal data, so
/// guardrails scan realistic text and redact nothing.
pub fn prose(words: usize) -> String {
    const TEXT: &str = "The migration finished in three phases over 14 days. In the first phase \
        the team moved 120 services to the new cluster, and the median latency fell from 85 ms \
        to 61 ms. The second phase covered the nightly batch jobs, which now start two hours \
        earlier and finish before the morning reports are built. Storage costs dropped by about \
        18 percent, mostly because old snapshots are now deleted after 30 days instead of 90. \
        The last phase is planned for the spring, once the reporting tools support the new \
        schema and the remaining 7 teams have tested their dashboards against it.";
    TEXT.split_whitespace()
        .cycle()
        .take(words.max(1))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The messages of a request: one short user message, or a conversation of about `bytes`
/// bytes (a system message, then user and assistant turns of prose, a user turn last).
pub fn conversation(bytes: usize) -> Value {
    if bytes == 0 {
        return json!([{"role": "user", "content": "Say hello"}]);
    }
    let mut messages = vec![json!({"role": "system", "content": prose(60)})];
    let mut size = 0;
    let mut turn = 0;
    while size < bytes || turn % 2 == 1 {
        let role = if turn % 2 == 0 { "user" } else { "assistant" };
        let text = prose(120 + turn * 7);
        size += text.len() + 40;
        messages.push(json!({"role": role, "content": text}));
        turn += 1;
    }
    Value::Array(messages)
}

/// The scenarios, at full scale. `scale` in (0, 1] shrinks concurrency and duration.
pub fn scenarios(scale: f64) -> Vec<Scenario> {
    let c = |n: usize| ((n as f64 * scale).round() as usize).max(2);
    let d = |s: f64| Duration::from_secs_f64((s * scale).max(1.0));
    // The two shapes of load the scenarios vary: small whole completions, and streams.
    let small = Scenario {
        name: "",
        description: "",
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
        prose: false,
        nginx: false,
        variants: &[],
        prompt_bytes: 0,
    };
    let streams = Scenario {
        mode: Mode::Closed {
            concurrency: c(200),
        },
        stream: true,
        chunks: 20,
        chunk_bytes: 16,
        gap: Duration::from_millis(20),
        ttft: Duration::from_millis(100),
        ramp: Duration::from_secs_f64(0.5 * scale),
        ..small.clone()
    };
    let streams_1k = Scenario {
        name: "streams-1k",
        description: "1,000 concurrent streams, 20 chunks 50 ms apart",
        mode: Mode::Closed {
            concurrency: c(1000),
        },
        gap: Duration::from_millis(50),
        ramp: Duration::from_secs_f64(1.0 * scale),
        nginx: true,
        ..streams.clone()
    };
    vec![
        Scenario {
            name: "small",
            description: "small non-stream completions, 64 clients, closed loop (max throughput)",
            nginx: true,
            ..small.clone()
        },
        Scenario {
            name: "prompt-8k",
            description: "small completions of an 8 KiB conversation (system message and \
                turns of prose), 64 clients, closed loop",
            nginx: true,
            prompt_bytes: 8 << 10,
            ..small.clone()
        },
        Scenario {
            name: "open-loop",
            description: "small non-stream completions at a fixed 2,000 requests/s (open loop)",
            mode: Mode::Open {
                rate: 2000.0 * scale.max(0.05),
                max_in_flight: c(2000),
            },
            nginx: true,
            ..small.clone()
        },
        streams_1k.clone(),
        Scenario {
            name: "streams-8k-prompt",
            description: "1,000 concurrent streams as in streams-1k, each with an 8 KiB \
                conversation as the prompt: what a stream holds of its request",
            prompt_bytes: 8 << 10,
            ..streams_1k
        },
        Scenario {
            name: "streams-10k",
            description: "10,000 concurrent long-lived streams (slow tokens), memory per stream",
            mode: Mode::Closed {
                concurrency: c(10_000),
            },
            duration: d(20.0),
            chunks: 60,
            gap: Duration::from_millis(250),
            ttft: Duration::from_millis(200),
            ramp: Duration::from_secs_f64(4.0 * scale),
            nginx: true,
            ..streams.clone()
        },
        Scenario {
            name: "failover",
            description:
                "small completions, 64 clients, first deployment dead (connection refused)",
            dead_deployment: true,
            ..small.clone()
        },
        Scenario {
            name: "translation",
            description:
                "200 concurrent streams, OpenAI client → Anthropic provider (translated both ways)",
            anthropic: true,
            ..streams.clone()
        },
        Scenario {
            name: "guardrails",
            description: "200 concurrent streams of prose, 20 chunks 20 ms apart, guardrails off, \
                on the output (secrets + pii, redact), and every built-in both ways (secrets + pii \
                redact, prompt_injection block)",
            prose: true,
            variants: &[Variant::OutputGuardrails, Variant::AllGuardrails],
            ..streams.clone()
        },
        Scenario {
            name: "cache",
            description: "200 concurrent streams, the same request each time (100 ms to the \
                first token, 20 chunks 20 ms apart): response cache off (every answer from \
                the provider) and on (every answer but the first a hit, replayed)",
            variants: &[Variant::CacheMemory],
            ..streams
        },
        Scenario {
            name: "ledger",
            description: "small non-stream completions, 64 clients, closed loop, usage ledger \
                off and on (SQLite, PostgreSQL)",
            variants: &[Variant::LedgerSqlite, Variant::LedgerPostgres],
            ..small
        },
        Scenario {
            name: "limits",
            description: "small non-stream completions, 64 clients, closed loop, limits off, \
                in memory and in Redis",
            variants: &[Variant::LimitsMemory, Variant::LimitsRedis],
            ..small
        },
    ]
}

/// One run's results.
#[derive(Debug)]
pub struct TargetResult {
    pub measured: Measured,
    pub process: Option<process::Usage>,
    /// sluice's own counters after the run (guardrail actions, rate-limit rejections, backend
    /// errors, fail-open admissions), from its admin `/metrics`.
    pub counters: Option<Value>,
    /// The `redis-server` child's usage during the run, for the Redis backend.
    pub redis_process: Option<process::Usage>,
}

/// A further run through sluice with a feature on, or why it was not run.
#[derive(Debug)]
pub struct VariantResult {
    pub variant: Variant,
    pub outcome: Result<TargetResult, String>,
}

/// Every run of a scenario.
#[derive(Debug)]
pub struct ScenarioReport {
    pub scenario: Scenario,
    pub direct: TargetResult,
    /// Through nginx `proxy_pass`, for the scenarios that have the baseline (or why it was
    /// not run).
    pub nginx: Option<Result<TargetResult, String>>,
    /// Through sluice, with the scenario's variants' features off.
    pub sluice: TargetResult,
    pub variants: Vec<VariantResult>,
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

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

const KEY: &str = "sk-bench-gateway-key";

struct Gateway {
    child: tokio::process::Child,
    port: u16,
    admin: u16,
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

async fn start_gateway(
    bin: &Path,
    mock_port: u16,
    s: &Scenario,
    extra: &str,
) -> Result<Gateway, String> {
    let dead = s.dead_deployment;
    let dir = std::env::temp_dir().join(format!(
        "sluice-bench-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let dir = tempfile_dir::Dir(dir);
    let port = free_port();
    let admin = free_port();
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
         upstream: {{ keepalive_pool_size: 20000 }}\n{extra}",
        mock_provider = if s.anthropic {
            format!("kind: anthropic, base_url: \"http://127.0.0.1:{mock_port}\", api_key: sk-bench-provider")
        } else {
            format!("kind: openai_compatible, base_url: \"http://127.0.0.1:{mock_port}/v1\"")
        },
        pid = dir.0.join("pid").display(),
        sock = dir.0.join("sock").display(),
    );
    let path = dir.0.join("sluice.yaml");
    std::fs::write(&path, &cfg).map_err(|e| e.to_string())?;
    // A config sluice refuses is an error worth its message, not a five-second wait.
    let check = tokio::process::Command::new(bin)
        .args(["check", "--resolve-secrets", "-c"])
        .arg(&path)
        .output()
        .await
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    if !check.status.success() {
        return Err(format!(
            "sluice refused the bench config: {}\n{cfg}",
            String::from_utf8_lossy(&check.stderr).trim()
        ));
    }
    let child = tokio::process::Command::new(bin)
        .args(["run", "-c"])
        .arg(&path)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    wait_for_answer(port).await?;
    Ok(Gateway {
        child,
        port,
        admin,
        _dir: dir,
    })
}

/// Waits until sluice answers on `port`. The probe asks sluice to close the connection after
/// its answer, and reads to the end: once it returns, nothing of it is left open in sluice (a
/// bare connect-and-drop may still be, when the descriptor baseline is taken).
async fn wait_for_answer(port: u16) -> Result<(), String> {
    let what = format!("sluice does not answer on port {port}");
    retry_for_5s(&what, || answers(port)).await
}

/// Whether an HTTP request on `port` gets an HTTP/1.1 answer and the connection closed.
async fn answers(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut sock) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let probe = b"GET /bench-ready HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n";
    let mut answer = Vec::new();
    if sock.write_all(probe).await.is_err() {
        return false;
    }
    let read = tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut answer));
    matches!(read.await, Ok(Ok(_))) && answer.starts_with(b"HTTP/1.1 ")
}

pub(crate) async fn wait_for_port(port: u16) -> Result<(), String> {
    let what = format!("nothing listens on port {port}");
    retry_for_5s(&what, || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await
}

/// Tries `ready` every 25 ms until it holds; `Err` naming `what` after 5 s.
async fn retry_for_5s<F, Fut>(what: &str, ready: F) -> Result<(), String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if ready().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(format!("{what} after 5 s"))
}

/// sluice's counters that tell whether a feature did something during a run.
const COUNTERS: &[(&str, &str)] = &[
    ("sluice_guardrail_actions_total", "guardrail_actions"),
    (
        "sluice_rate_limit_rejections_total",
        "rate_limit_rejections",
    ),
    (
        "sluice_rate_limit_backend_errors_total",
        "rate_limit_backend_errors",
    ),
    ("sluice_rate_limit_fail_open_total", "rate_limit_fail_open"),
    ("sluice_cache_lookups_total{result=\"hit\"}", "cache_hits"),
    ("sluice_cache_stores_total", "cache_stores"),
    (
        "sluice_usage_records_written_total",
        "usage_records_written",
    ),
    (
        "sluice_usage_records_spilled_total",
        "usage_records_spilled",
    ),
];

/// sluice's admin `/metrics` text.
async fn admin_metrics(admin: u16) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", admin))
        .await
        .map_err(|e| format!("admin: {e}"))?;
    sock.write_all(
        format!("GET /metrics HTTP/1.1\r\nhost: 127.0.0.1:{admin}\r\nconnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .map_err(|e| format!("admin: {e}"))?;
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(5), sock.read_to_string(&mut text))
        .await
        .map_err(|_| "admin: timeout".to_string())?
        .map_err(|e| format!("admin: {e}"))?;
    Ok(text)
}

/// Reads sluice's admin `/metrics` and sums each of [`COUNTERS`] over its labels (absent
/// counters are 0).
async fn scrape_counters(admin: u16) -> Result<Value, String> {
    let text = admin_metrics(admin).await?;
    let mut out = serde_json::Map::new();
    for (metric, name) in COUNTERS {
        let sum: f64 = text
            .lines()
            .filter(|l| {
                l.strip_prefix(metric)
                    .is_some_and(|rest| rest.starts_with(['{', ' ']))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        out.insert((*name).into(), json!(sum as u64));
    }
    Ok(Value::Object(out))
}

/// A `redis-server` child on a free loopback port, without persistence; killed on drop.
pub struct Redis {
    child: tokio::process::Child,
    pub port: u16,
}

impl Redis {
    /// Starts `bin` (normally `redis-server`, found on `PATH`). The error says why it could
    /// not run, for the report.
    pub async fn start(bin: &str) -> Result<Redis, String> {
        let port = free_port();
        let child = process::spawn_server(
            bin,
            tokio::process::Command::new(bin)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"]),
        )?;
        let mut redis = Redis { child, port };
        if let Err(e) = wait_for_port(port).await {
            redis.stop();
            return Err(format!("{bin} did not start: {e}"));
        }
        Ok(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Loads sluice started with `extra` config lines, sampling its process, then reads its
/// counters and stops it.
async fn run_through_sluice(
    bin: &Path,
    mock_port: u16,
    s: &Scenario,
    extra: &str,
    spec: &dyn Fn(u16, Option<&str>, &str) -> LoadSpec,
    phase: &str,
    progress: &(dyn Fn(&str, u64, u64, usize) + Sync),
) -> Result<TargetResult, String> {
    let mut gw = start_gateway(bin, mock_port, s, extra).await?;
    let pid = gw.child.id().ok_or("sluice exited")?;
    process::Sampler::settled(pid).await;
    let sampler = process::Sampler::start(pid);
    let via_spec = spec(gw.port, Some(KEY), "sluice");
    let measured = load::run(&via_spec, &|d, f, i| progress(phase, d, f, i)).await;
    let usage = sampler.stop().await;
    let counters = scrape_counters(gw.admin).await.ok();
    let _ = gw.child.start_kill();
    let _ = gw.child.wait().await;
    Ok(TargetResult {
        measured,
        process: Some(usage),
        counters,
        redis_process: None,
    })
}

/// Starts the mock provider for `s`, answering `reply`. It runs in its own process so that
/// its sockets do not count against the load generator's open-file limit.
async fn start_mock(
    bin: &Path,
    s: &Scenario,
    reply: &str,
) -> Result<(tokio::process::Child, u16), String> {
    let mock_port = free_port();
    let mock = tokio::process::Command::new(bin.with_file_name("sluice-mock"))
        .args(["--listen", &format!("127.0.0.1:{mock_port}")])
        .args(["--ttft-ms", &s.ttft.as_millis().to_string()])
        .args(["--gap-ms", &s.gap.as_millis().to_string()])
        .args(["--reply", reply])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start sluice-mock: {e}"))?;
    wait_for_port(mock_port).await?;
    Ok((mock, mock_port))
}

/// Runs one scenario: direct to the mock, through sluice, then through sluice once per
/// variant.
pub async fn run_scenario(
    s: &Scenario,
    progress: &(dyn Fn(&str, u64, u64, usize) + Sync),
) -> Result<ScenarioReport, String> {
    let bin = sluice_binary()?;
    let reply = if s.prose {
        prose(s.chunks.saturating_sub(1))
    } else {
        let word = "x".repeat(s.chunk_bytes.saturating_sub(1).max(1));
        vec![word; s.chunks.saturating_sub(1).max(1)].join(" ")
    };
    let (mut mock, mock_port) = start_mock(&bin, s, &reply).await?;
    let body = json!({
        "model": "gpt-4o-mini",
        "stream": s.stream,
        "messages": conversation(s.prompt_bytes)
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
    let nginx = if s.nginx {
        Some(run_through_nginx(mock_port, &spec, progress).await)
    } else {
        None
    };

    let sluice =
        run_through_sluice(&bin, mock_port, s, "", &spec, &s.sluice_label(), progress).await?;
    let mut variants = Vec::new();
    for &v in s.variants {
        let mut redis = None;
        if v == Variant::LimitsRedis {
            match Redis::start("redis-server").await {
                Ok(r) => redis = Some(r),
                Err(why) => {
                    variants.push(VariantResult {
                        variant: v,
                        outcome: Err(format!("not run: {why}")),
                    });
                    continue;
                }
            }
        }
        let mut pg = None;
        if v == Variant::LedgerPostgres {
            match postgres::Postgres::start() {
                Ok(p) => pg = Some(p),
                Err(why) => {
                    variants.push(VariantResult {
                        variant: v,
                        outcome: Err(format!("not run: {why}")),
                    });
                    continue;
                }
            }
        }
        let url = redis
            .as_ref()
            .map(Redis::url)
            .or_else(|| pg.as_ref().map(postgres::Postgres::url));
        let extra = v.config(url.as_deref());
        let phase = format!("through sluice, {}", v.label());
        let redis_sampler = redis
            .as_ref()
            .and_then(|r| r.child.id())
            .map(process::Sampler::start);
        let outcome = run_through_sluice(&bin, mock_port, s, &extra, &spec, &phase, progress).await;
        if v == Variant::LedgerSqlite {
            remove_ledger();
        }
        drop(pg);
        let redis_usage = match redis_sampler {
            Some(sampler) => Some(sampler.stop().await),
            None => None,
        };
        if let Some(r) = &mut redis {
            r.stop();
        }
        let mut outcome = outcome?;
        outcome.redis_process = redis_usage;
        variants.push(VariantResult {
            variant: v,
            outcome: Ok(outcome),
        });
    }
    let _ = mock.start_kill();
    Ok(ScenarioReport {
        scenario: s.clone(),
        direct: TargetResult {
            measured: direct,
            process: None,
            counters: None,
            redis_process: None,
        },
        nginx,
        sluice,
        variants,
    })
}

/// Loads nginx `proxy_pass` in front of the mock, sampling its master and workers.
async fn run_through_nginx(
    mock_port: u16,
    spec: &dyn Fn(u16, Option<&str>, &str) -> LoadSpec,
    progress: &(dyn Fn(&str, u64, u64, usize) + Sync),
) -> Result<TargetResult, String> {
    let mut nginx = nginx::Nginx::start("nginx", mock_port)
        .await
        .map_err(|why| format!("not run: {why}"))?;
    let pid = nginx.pid().ok_or("nginx exited")?;
    let sampler = process::Sampler::start_tree(pid);
    let measured = load::run(&spec(nginx.port, Some(KEY), "nginx"), &|d, f, i| {
        progress("through nginx proxy_pass", d, f, i)
    })
    .await;
    let usage = sampler.stop().await;
    nginx.stop().await;
    Ok(TargetResult {
        measured,
        process: Some(usage),
        counters: None,
        redis_process: None,
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

/// A ratio to two decimals, or to three significant digits below 0.1 (a cache hit is a
/// thousandth of a miss: 0.00 would say nothing).
fn round_ratio(r: f64) -> f64 {
    if r >= 0.1 || r == 0.0 {
        return (r * 100.0).round() / 100.0;
    }
    let scale = 10f64.powi(2 - r.log10().floor() as i32);
    (r * scale).round() / scale
}

fn ratio(a: &Value, b: &Value) -> Value {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if y > 0.0 => json!(round_ratio(x / y)),
        _ => Value::Null,
    }
}

/// Ratios of run `a` to run `b` (summaries, with their processes when both have one).
fn ratios(a: &Value, b: &Value, stream: bool, procs: Option<(&Value, &Value)>) -> Value {
    let mut r = json!({
        "throughput": ratio(&a["throughput_rps"], &b["throughput_rps"]),
        "latency_p50": ratio(&a["latency_ms"]["p50"], &b["latency_ms"]["p50"]),
        "latency_p99": ratio(&a["latency_ms"]["p99"], &b["latency_ms"]["p99"]),
    });
    if stream {
        r["ttft_p50"] = ratio(&a["ttft_ms"]["p50"], &b["ttft_ms"]["p50"]);
        r["ttft_p99"] = ratio(&a["ttft_ms"]["p99"], &b["ttft_ms"]["p99"]);
    }
    if let Some((pa, pb)) = procs {
        // CPU time under one clock tick reads as 0: not measured, so no ratio (a 0x would
        // claim a process did the work for free).
        let measured = pa["cpu_us_per_request"].as_f64().is_some_and(|c| c > 0.0);
        r["cpu_per_request"] = if measured {
            ratio(&pa["cpu_us_per_request"], &pb["cpu_us_per_request"])
        } else {
            Value::Null
        };
    }
    r
}

/// A run through a proxy (sluice or nginx) as JSON: its summary and its process's usage
/// (per streamed chunk too when each answer is a stream of `chunks`).
fn run_json(t: &mut TargetResult, chunks: Option<usize>) -> (Value, Value) {
    let v = summary(&mut t.measured);
    let process = t.process.as_ref().map_or(Value::Null, |u| {
        let streams = v["peak_in_flight"].as_u64().unwrap_or(0).max(1);
        let requests = v["requests_ok"].as_u64().unwrap_or(0).max(1);
        let per_request = u.cpu_seconds * 1e6 / requests as f64;
        let mut p = json!({
            "rss_baseline_kib": u.rss_baseline_kib,
            "rss_peak_kib": u.rss_peak_kib,
            "rss_per_in_flight_request_kib": (u.rss_peak_kib.saturating_sub(u.rss_baseline_kib)) as f64 / streams as f64,
            "cpu_seconds": u.cpu_seconds,
            "cpu_us_per_request": per_request,
            "fds_baseline": u.fds_baseline,
            "fds_peak": u.fds_peak,
            "fds_per_in_flight_request": (u.fds_peak.saturating_sub(u.fds_baseline)) as f64 / streams as f64,
        });
        if let Some(n) = chunks {
            p["cpu_us_per_chunk"] = json!(per_request / n.max(1) as f64);
        }
        p
    });
    (v, process)
}

impl ScenarioReport {
    /// The report as JSON: every run, sluice's process usage, ratios sluice/direct and, for
    /// each variant, ratios of the run with the feature on to the run with it off.
    pub fn to_json(&mut self) -> Value {
        let stream = self.scenario.stream;
        let chunks = stream.then_some(self.scenario.chunks);
        let d = summary(&mut self.direct.measured);
        let (v, process) = run_json(&mut self.sluice, chunks);
        let mut out = json!({
            "scenario": self.scenario.name,
            "description": self.scenario.description,
            "direct": d,
            "sluice": v,
            "sluice_process": process,
            "ratios_sluice_over_direct": ratios(&v, &d, stream, None),
        });
        match &mut self.nginx {
            Some(Ok(t)) => {
                let (n, n_process) = run_json(t, chunks);
                let mut r = ratios(&v, &n, stream, Some((&process, &n_process)));
                r["rss_per_in_flight_request"] = ratio(
                    &process["rss_per_in_flight_request_kib"],
                    &n_process["rss_per_in_flight_request_kib"],
                );
                out["nginx"] = n;
                out["nginx_process"] = n_process;
                out["ratios_sluice_over_nginx"] = r;
            }
            Some(Err(why)) => out["nginx_skipped"] = json!(why),
            None => {}
        }
        if let Some(first) = self.scenario.variants.first() {
            let relevant = |c: &Option<Value>| match c {
                Some(Value::Object(m)) => Value::Object(
                    m.iter()
                        .filter(|(k, _)| k.starts_with(first.counter_prefix()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                ),
                _ => Value::Null,
            };
            out["sluice_label"] = json!(first.off_label());
            out["sluice_counters"] = relevant(&self.sluice.counters);
            let variants: Vec<Value> = self
                .variants
                .iter_mut()
                .map(|vr| match &mut vr.outcome {
                    Err(why) => json!({"name": vr.variant.label(), "skipped": why}),
                    Ok(t) => {
                        let (on, on_process) = run_json(t, chunks);
                        let requests = on["requests_ok"].as_u64().unwrap_or(0).max(1);
                        let redis = t.redis_process.as_ref().map(|u| {
                            json!({
                                "cpu_seconds": u.cpu_seconds,
                                "cpu_us_per_request": u.cpu_seconds * 1e6 / requests as f64,
                            })
                        });
                        json!({
                            "name": vr.variant.label(),
                            "sluice": on,
                            "sluice_process": on_process,
                            "redis_process": redis,
                            "sluice_counters": relevant(&t.counters),
                            "ratios_sluice_over_direct": ratios(&on, &d, stream, None),
                            "ratios_on_over_off": ratios(&on, &v, stream, Some((&on_process, &process))),
                        })
                    }
                })
                .collect();
            out["variants"] = json!(variants);
        }
        out
    }
}

/// The report as a markdown section (also what the terminal shows).
pub fn markdown(r: &Value) -> String {
    let f = |v: &Value| match v.as_f64() {
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) if x > 0.0 && x < 0.1 => format!("{}", round_ratio(x)),
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
    let ratio_row = |name: &str, r: &Value| {
        format!(
            "| {name} | {}x | {}x | {}x | {}x | {}x | | |\n",
            f(&r["throughput"]),
            f(&r["latency_p50"]),
            f(&r["latency_p99"]),
            f(&r["ttft_p50"]),
            f(&r["ttft_p99"]),
        )
    };
    let process_line = |name: &str, p: &Value| {
        match p.as_object() {
        Some(p) => format!(
            "\n{name}: RSS {} KiB idle → {} KiB peak ({} KiB per in-flight request), {} s CPU ({} µs per request{}), {} → {} open descriptors ({} per in-flight request).\n",
            p["rss_baseline_kib"],
            p["rss_peak_kib"],
            f(&p["rss_per_in_flight_request_kib"]),
            f(&p["cpu_seconds"]),
            f(&p["cpu_us_per_request"]),
            p.get("cpu_us_per_chunk")
                .map_or(String::new(), |c| format!(", {} µs per streamed chunk", f(c))),
            p["fds_baseline"],
            p["fds_peak"],
            f(&p["fds_per_in_flight_request"]),
        ),
        None => String::new(),
    }
    };
    let counters_line = |name: &str, c: &Value| match c.as_object() {
        Some(c) => {
            let items: Vec<String> = c.iter().map(|(k, v)| format!("{k} {v}")).collect();
            format!("\n{name} counters: {}.\n", items.join(", "))
        }
        None => String::new(),
    };
    let mut out = format!(
        "### {} — {}\n\n| target | req/s | p50 ms | p99 ms | TTFT p50 ms | TTFT p99 ms | errors | peak in flight |\n|---|---|---|---|---|---|---|---|\n",
        r["scenario"].as_str().unwrap_or(""),
        r["description"].as_str().unwrap_or("")
    );
    out += &row("direct to mock", &r["direct"]);
    if r["nginx"].is_object() {
        out += &row("through nginx proxy_pass", &r["nginx"]);
    }
    let off = r["sluice_label"].as_str();
    let suffix = |label: Option<&str>| label.map_or(String::new(), |l| format!(", {l}"));
    out += &row(&format!("through sluice{}", suffix(off)), &r["sluice"]);
    let variants = r["variants"].as_array().cloned().unwrap_or_default();
    for v in &variants {
        if v["sluice"].is_object() {
            let name = format!("through sluice{}", suffix(v["name"].as_str()));
            out += &row(&name, &v["sluice"]);
        }
    }
    out += &ratio_row(
        &format!("sluice / direct{}", suffix(off)),
        &r["ratios_sluice_over_direct"],
    );
    for v in &variants {
        if v["sluice"].is_object() {
            let name = format!("sluice / direct{}", suffix(v["name"].as_str()));
            out += &ratio_row(&name, &v["ratios_sluice_over_direct"]);
        }
    }
    if r["nginx"].is_object() {
        out += &ratio_row(
            &format!("**sluice{} / nginx**", suffix(off)),
            &r["ratios_sluice_over_nginx"],
        );
    }
    for v in &variants {
        if v["sluice"].is_object() {
            let name = format!(
                "**{} / {}**",
                v["name"].as_str().unwrap_or(""),
                off.unwrap_or("")
            );
            out += &ratio_row(&name, &v["ratios_on_over_off"]);
        }
    }
    for v in &variants {
        if let Some(why) = v["skipped"].as_str() {
            out += &format!(
                "\n**{}**: {why}.\n",
                v["name"].as_str().unwrap_or("variant")
            );
        }
    }
    let cpu_ratios: Vec<String> = variants
        .iter()
        .filter(|v| v["ratios_on_over_off"]["cpu_per_request"].is_number())
        .map(|v| {
            format!(
                "{} / {}: {}x",
                v["name"].as_str().unwrap_or(""),
                off.unwrap_or(""),
                f(&v["ratios_on_over_off"]["cpu_per_request"])
            )
        })
        .collect();
    if !cpu_ratios.is_empty() {
        out += &format!(
            "\nsluice CPU time per request: {}.\n",
            cpu_ratios.join("; ")
        );
    }
    if let Some(why) = r["nginx_skipped"].as_str() {
        out += &format!("\n**nginx proxy_pass**: {why}.\n");
    }
    out += &process_line(
        &format!("sluice process{}", suffix(off)),
        &r["sluice_process"],
    );
    if r["nginx"].is_object() {
        out += &process_line("nginx (master and workers)", &r["nginx_process"]);
        let n = &r["ratios_sluice_over_nginx"];
        out += &format!(
            "\nsluice / nginx: CPU time per request {}x, RSS per in-flight request {}x.\n",
            f(&n["cpu_per_request"]),
            f(&n["rss_per_in_flight_request"]),
        );
    }
    for v in &variants {
        if v["sluice"].is_object() {
            let name = format!("sluice process{}", suffix(v["name"].as_str()));
            out += &process_line(&name, &v["sluice_process"]);
            if let Some(p) = v["redis_process"].as_object() {
                out += &format!(
                    "\nredis-server{}: {} s CPU ({} µs per request), on top of sluice's.\n",
                    suffix(v["name"].as_str()),
                    f(&p["cpu_seconds"]),
                    f(&p["cpu_us_per_request"]),
                );
            }
        }
    }
    if off.is_some() {
        out += &counters_line(&format!("sluice{}", suffix(off)), &r["sluice_counters"]);
        for v in &variants {
            if v["sluice"].is_object() {
                let name = format!("sluice{}", suffix(v["name"].as_str()));
                out += &counters_line(&name, &v["sluice_counters"]);
            }
        }
    }
    out
}
