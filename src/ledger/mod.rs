//! The usage ledger: one record per request — who, which model and provider, tokens, cost,
//! latency, outcome; never prompt or answer text — written off the request path.
//!
//! A request hands its record to a bounded queue ([`Ledger::record`] never waits); a writer
//! thread of its own drains the queue in batches into the store (SQLite, [`sqlite`]). When the
//! queue is full the record is appended to a spill file beside the store instead, and the
//! writer replays that file once it has caught up: nothing is dropped silently, and a slow
//! store never slows a request. On shutdown the writer drains what is queued; a spill file
//! left behind is stored on the next start.

pub mod query;
pub mod sqlite;

use std::fs::OpenOptions;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{IntCounter, Opts};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::ctx::Ctx;
use crate::front::Front;

/// Records waiting for the writer before new ones spill to the file.
const QUEUE: usize = 16_384;
/// Records written in one transaction at most.
const BATCH: usize = 512;
/// How long the writer waits to fill a batch.
const LINGER: Duration = Duration::from_millis(200);

/// One request, as the ledger keeps it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// The record's own id (random): a record stored twice (replayed after a write that
    /// failed late) is kept once.
    pub id: u64,
    /// Unix time in milliseconds when the request arrived.
    pub ts_ms: u64,
    pub request_id: String,
    pub key: Option<String>,
    /// Public model name.
    pub model: Option<String>,
    /// Provider config name and the provider's model of the deployment that answered.
    pub provider: Option<String>,
    pub upstream_model: Option<String>,
    /// The client API: `openai`, `anthropic` or `responses`.
    pub api: String,
    pub stream: bool,
    /// Status sent to the client (0: none, the client left first).
    pub status: u16,
    /// Low-cardinality error label (`client`, `auth`, `upstream`, `internal`, `limit`).
    pub error: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    /// USD at the configured price of the public model (0 without a price).
    pub cost_usd: f64,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
    pub attempts: u32,
    /// Guardrail actions as `direction:guardrail:kinds` (names and kinds only).
    pub guardrails: Vec<String>,
}

impl UsageRecord {
    /// The record of a finished request.
    pub fn from_ctx(ctx: &Ctx, status: u16, cfg: &Config) -> Self {
        let usage = ctx.usage.unwrap_or_default();
        let cost = ctx
            .model
            .as_deref()
            .and_then(|m| cfg.rate_limits.pricing.get(m))
            .map_or(0.0, |p| {
                p.cost(usage.prompt_tokens, usage.completion_tokens)
            });
        let elapsed = ctx.start.elapsed();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        UsageRecord {
            id: rand::random::<u64>() >> 1,
            ts_ms: now_ms.saturating_sub(elapsed.as_millis() as u64),
            request_id: ctx.request_id.clone(),
            key: ctx.key_name.clone(),
            model: ctx.model.clone(),
            provider: ctx.provider.clone(),
            upstream_model: ctx.upstream_model.clone(),
            api: match ctx.front {
                Front::OpenAi => "openai",
                Front::Anthropic => "anthropic",
                Front::Responses => "responses",
            }
            .to_string(),
            stream: ctx.stream,
            status,
            error: ctx.error.map(str::to_string),
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            cached_tokens: usage.cached_tokens,
            cost_usd: cost,
            latency_ms: elapsed.as_millis() as u64,
            ttft_ms: ctx.ttfb.map(|t| t.as_millis() as u64),
            attempts: ctx.attempts,
            guardrails: ctx
                .guardrails
                .iter()
                .map(|(direction, f)| format!("{direction}:{}", f.guardrail()))
                .collect(),
        }
    }
}

/// What the ledger did, as Prometheus counters (registered by the server):
/// `sluice_usage_records_written_total`, `sluice_usage_records_spilled_total` (records that
/// went to the spill file because the queue was full or the store failed) and
/// `sluice_usage_write_failures_total` (batches the store refused).
#[derive(Debug, Clone)]
pub struct LedgerStats {
    pub written: IntCounter,
    pub spilled: IntCounter,
    pub failed_batches: IntCounter,
}

impl Default for LedgerStats {
    fn default() -> Self {
        let counter = |name: &str, help: &str| {
            IntCounter::with_opts(Opts::new(name, help).namespace("sluice")).expect("valid metric")
        };
        LedgerStats {
            written: counter(
                "usage_records_written_total",
                "Usage records stored in the ledger.",
            ),
            spilled: counter(
                "usage_records_spilled_total",
                "Usage records written to the spill file (queue full or store failing).",
            ),
            failed_batches: counter(
                "usage_write_failures_total",
                "Batches of usage records the store refused (they are spilled and replayed).",
            ),
        }
    }
}

impl LedgerStats {
    /// The counters, to register in the metrics registry.
    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.written.clone()),
            Box::new(self.spilled.clone()),
            Box::new(self.failed_batches.clone()),
        ]
    }
}

/// The handle requests record through.
pub struct Ledger {
    tx: Mutex<Option<SyncSender<UsageRecord>>>,
    /// The spill file; its lock orders appends against the writer taking the file over.
    spill: Arc<Mutex<PathBuf>>,
    pub stats: Arc<LedgerStats>,
    /// The queue's receiving end until the writer starts ([`Ledger::run_writer`]).
    pending: Mutex<Option<Receiver<UsageRecord>>>,
    retention: Duration,
    /// The store's file, for queries.
    pub path: PathBuf,
    /// Signalled when the writer has stored everything and stopped.
    stopped: Mutex<Option<Receiver<()>>>,
}

impl Ledger {
    /// Checks the store (creating or migrating its schema, so a bad path fails at start).
    /// Records queue until [`Ledger::run_writer`] starts the writer, which opens its own
    /// connection: an SQLite connection must not cross the fork into the background.
    pub fn open(path: &Path, retention: Duration) -> Result<Ledger, String> {
        drop(sqlite::Store::open(path)?);
        let (tx, rx) = sync_channel(QUEUE);
        Ok(Ledger {
            tx: Mutex::new(Some(tx)),
            spill: Arc::new(Mutex::new(spill_path(path))),
            stats: Arc::new(LedgerStats::default()),
            pending: Mutex::new(Some(rx)),
            retention,
            path: path.to_path_buf(),
            stopped: Mutex::new(None),
        })
    }

    /// Starts the writer on a thread of its own; a second call does nothing.
    pub fn run_writer(&self) -> Result<(), String> {
        let Some(rx) = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return Ok(());
        };
        let store = sqlite::Store::open(&self.path)?;
        let (done_tx, done_rx) = sync_channel(1);
        let (spill, stats, retention) = (self.spill.clone(), self.stats.clone(), self.retention);
        std::thread::Builder::new()
            .name("sluice-ledger".into())
            .spawn(move || {
                write_loop(store, rx, &spill, &stats, retention);
                let _ = done_tx.send(());
            })
            .map_err(|e| format!("cannot start the ledger writer: {e}"))?;
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = Some(done_rx);
        Ok(())
    }

    /// Queues a record; never waits. A full queue spills the record to the file.
    pub fn record(&self, rec: UsageRecord) {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(tx) = tx else {
            return self.spill_one(rec);
        };
        match tx.try_send(rec) {
            Ok(()) => {}
            Err(TrySendError::Full(rec)) | Err(TrySendError::Disconnected(rec)) => {
                self.spill_one(rec)
            }
        }
    }

    fn spill_one(&self, rec: UsageRecord) {
        let path = self.spill.lock().unwrap_or_else(|e| e.into_inner());
        match append(&path, &[rec]) {
            Ok(()) => {
                self.stats.spilled.inc();
                if self.stats.spilled.get() == 1 {
                    log::warn!(
                        "usage ledger: the writer is behind; records spill to {}",
                        path.display()
                    );
                }
            }
            Err(e) => log::error!("usage ledger: cannot spill a record: {e}"),
        }
    }

    /// Stops taking records and waits (up to `wait`) for the writer to store what is
    /// queued. Records that arrive later spill to the file, to be stored on the next start.
    pub fn close(&self, wait: Duration) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(done) = self
            .stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = done.recv_timeout(wait);
        }
    }
}

/// The spill file beside the store: `usage.db` → `usage.db.spill`.
pub fn spill_path(store: &Path) -> PathBuf {
    let mut p = store.as_os_str().to_owned();
    p.push(".spill");
    PathBuf::from(p)
}

/// Appends records to a spill file, one JSON object per line.
fn append(path: &Path, recs: &[UsageRecord]) -> std::io::Result<()> {
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    let mut buf = Vec::new();
    for r in recs {
        serde_json::to_writer(&mut buf, r).map_err(std::io::Error::other)?;
        buf.push(b'\n');
    }
    f.write_all(&buf)
}

/// The writer thread: batches from the queue into the store; spilled records replayed when
/// the queue is idle; expired records pruned once an hour.
fn write_loop(
    mut store: sqlite::Store,
    rx: Receiver<UsageRecord>,
    spill: &Mutex<PathBuf>,
    stats: &LedgerStats,
    retention: Duration,
) {
    let mut last_prune = None::<std::time::Instant>;
    loop {
        let first = match rx.recv_timeout(LINGER) {
            Ok(r) => Some(r),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                replay(&mut store, spill, stats);
                return;
            }
        };
        let mut batch: Vec<UsageRecord> = first.into_iter().collect();
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let keeping_up = batch.len() < BATCH;
        if !batch.is_empty() {
            store_batch(&mut store, batch, spill, stats);
        }
        if keeping_up {
            replay(&mut store, spill, stats);
        }
        if last_prune.is_none_or(|t| t.elapsed() > Duration::from_secs(3600)) {
            if let Err(e) = store.prune(retention) {
                log::warn!("usage ledger: pruning failed: {e}");
            }
            last_prune = Some(std::time::Instant::now());
        }
    }
}

/// Writes a batch; on failure it goes to the spill file, to be replayed.
fn store_batch(
    store: &mut sqlite::Store,
    batch: Vec<UsageRecord>,
    spill: &Mutex<PathBuf>,
    stats: &LedgerStats,
) {
    match store.insert(&batch) {
        Ok(()) => {
            stats.written.inc_by(batch.len() as u64);
        }
        Err(e) => {
            stats.failed_batches.inc();
            log::warn!(
                "usage ledger: writing {} records failed ({e}); spilling them",
                batch.len()
            );
            let path = spill.lock().unwrap_or_else(|e| e.into_inner());
            if append(&path, &batch).is_ok() {
                stats.spilled.inc_by(batch.len() as u64);
            }
        }
    }
}

/// Moves spilled records into the store. The spill file is first renamed (under its lock),
/// so records spilled meanwhile start a new file; records are kept by id, so one replayed
/// twice (after a failed attempt) is stored once.
fn replay(store: &mut sqlite::Store, spill: &Mutex<PathBuf>, stats: &LedgerStats) {
    let taken = {
        let path = spill.lock().unwrap_or_else(|e| e.into_inner());
        let taken = replay_path(&path);
        if !taken.exists() && std::fs::rename(&*path, &taken).is_err() {
            return;
        }
        taken
    };
    let Ok(f) = std::fs::File::open(&taken) else {
        return;
    };
    let mut recs = Vec::new();
    for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
        match serde_json::from_str::<UsageRecord>(&line) {
            Ok(r) => recs.push(r),
            Err(_) => log::warn!("usage ledger: skipping a malformed spilled record"),
        }
    }
    for chunk in recs.chunks(BATCH) {
        if let Err(e) = store.insert(chunk) {
            log::warn!("usage ledger: replaying spilled records failed ({e}); will retry");
            return;
        }
        stats.written.inc_by(chunk.len() as u64);
    }
    match std::fs::remove_file(&taken) {
        Ok(()) if !recs.is_empty() => {
            log::info!("usage ledger: {} spilled records stored", recs.len())
        }
        Ok(()) => {}
        Err(e) => log::warn!("usage ledger: cannot remove {}: {e}", taken.display()),
    }
}

/// Where the writer moves a spill file while it replays it.
fn replay_path(spill: &Path) -> PathBuf {
    let mut p = spill.as_os_str().to_owned();
    p.push(".replaying");
    PathBuf::from(p)
}

/// Starts the ledger's writer once the server runs (after a fork into the background).
pub struct LedgerWriter(pub Arc<Ledger>);

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for LedgerWriter {
    async fn start(&self, _shutdown: pingora::server::ShutdownWatch) {
        if let Err(e) = self.0.run_writer() {
            log::error!("usage ledger: {e}; records spill to the file until a restart");
        }
    }
}

/// The grouped totals of a store since `since_ms`, read off the async workers.
pub async fn summary(
    path: PathBuf,
    since_ms: u64,
    by: Vec<query::Group>,
) -> Result<Vec<query::Row>, String> {
    tokio::task::spawn_blocking(move || {
        sqlite::Store::open_read_only(&path)?.summary(since_ms, &by)
    })
    .await
    .map_err(|e| format!("the usage query failed: {e}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u64) -> UsageRecord {
        UsageRecord {
            id: i + 1,
            ts_ms: 1_000 + i,
            request_id: format!("r{i}"),
            key: Some("team-a".into()),
            model: Some("m".into()),
            api: "openai".into(),
            status: 200,
            prompt_tokens: 2,
            completion_tokens: 3,
            ..UsageRecord::default()
        }
    }

    #[test]
    fn a_full_queue_spills_and_the_writer_stores_everything_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.db");
        let ledger = Ledger::open(&path, Duration::from_secs(86_400 * 365 * 100)).unwrap();
        // No writer yet: the queue fills, then records spill to the file.
        let n = QUEUE as u64 + 5;
        for i in 0..n {
            ledger.record(rec(i));
        }
        assert_eq!(ledger.stats.spilled.get(), 5);
        assert!(spill_path(&path).exists());
        // A record spilled twice (a replay that failed late) is stored once.
        append(&spill_path(&path), &[rec(0)]).unwrap();
        ledger.run_writer().unwrap();
        ledger.close(Duration::from_secs(30));
        let store = sqlite::Store::open_read_only(&path).unwrap();
        let rows = store.summary(0, &[query::Group::Key]).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].requests, n);
        assert_eq!(rows[0].prompt_tokens, 2 * n);
        assert!(
            !spill_path(&path).exists(),
            "the spill file is replayed and removed"
        );
        // After close, a late record spills rather than vanishing.
        ledger.record(rec(n));
        assert!(spill_path(&path).exists());
    }
}
