//! The usage ledger: one record per request — who, which model and provider, tokens, cost,
//! latency, outcome; never prompt or answer text — written off the request path.
//!
//! A request hands its record to a bounded queue ([`Ledger::record`] never waits); a writer
//! thread of its own drains the queue in batches into the store (SQLite, [`sqlite`], or
//! PostgreSQL, [`postgres`]). When the queue is full or the store fails, records are appended
//! to a spill file instead, and the writer replays that file once it has caught up: nothing
//! is dropped silently, and a slow store never slows a request. On shutdown the writer drains what is queued; a spill file
//! left behind is stored on the next start.

pub mod keys;
mod pg_tls;
pub mod postgres;
mod postgres_keys;
pub mod query;
pub mod report;
pub mod sqlite;
mod sqlite_keys;
pub mod store;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{IntCounter, Opts};
use serde::{Deserialize, Serialize};

use crate::config::{Config, UsageSettings, UsageStore};
use crate::core::sync::lock;
use crate::ctx::Ctx;
use crate::front::Front;

/// Records waiting for the writer before new ones spill to the file.
const QUEUE: usize = 16_384;
/// Records written in one transaction at most.
const BATCH: usize = 512;
/// How long the writer sleeps between rounds while the queue is less than a quarter full.
const LINGER: Duration = Duration::from_millis(100);

/// One request, as the ledger keeps it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// The record's own id, given by [`Ledger::record`]: a record stored twice (replayed
    /// after a write that failed late) is kept once. Ids of one process run are consecutive
    /// under a random prefix (see [`Ledger::next_id`]), so stores append instead of inserting
    /// at random places in their primary-key index.
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
    /// Reasoning ("thinking") tokens, part of `completion_tokens`, where the provider reports
    /// them.
    #[serde(default)]
    pub reasoning_tokens: u64,
    /// USD at the configured price of the public model (0 without a price).
    pub cost_usd: f64,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
    pub attempts: u32,
    /// Attempts that moved to another deployment than the one before.
    #[serde(default)]
    pub failovers: u32,
    /// Guardrail actions as `direction:guardrail:action:kinds` — e.g.
    /// `output:no-secrets:redact:aws_access_key+github_token` — names and kinds only, never
    /// the matched text.
    pub guardrails: Vec<String>,
    /// The limit that refused the request, as `scope:kind` (`key:requests`,
    /// `model:tokens`, `key:budget`, `backend`).
    #[serde(default)]
    pub limit: Option<String>,
    /// The team the request was made for (from the key that authenticated it).
    #[serde(default)]
    pub team: Option<String>,
    /// What the response cache did: `hit` (answered from the cache, no provider tokens),
    /// `miss`, `bypass`; `None` without `cache:`.
    #[serde(default)]
    pub cache: Option<String>,
}

impl UsageRecord {
    /// The record of a finished request.
    pub fn from_ctx(ctx: &Ctx, status: u16, cfg: &Config) -> Self {
        let usage = ctx.usage.unwrap_or_default();
        let cost = cfg
            .price_of(
                ctx.model.as_deref(),
                ctx.provider.as_deref(),
                ctx.upstream_model.as_deref(),
            )
            .map_or(0.0, |p| p.cost(&crate::limits::Usage::of(&usage)));
        let elapsed = ctx.start.elapsed();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        UsageRecord {
            id: 0,
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
            reasoning_tokens: usage.reasoning_tokens,
            cost_usd: cost,
            latency_ms: elapsed.as_millis() as u64,
            ttft_ms: ctx.ttfb.map(|t| t.as_millis() as u64),
            attempts: ctx.attempts,
            failovers: ctx.failovers,
            limit: ctx.limit.clone(),
            team: ctx.team.clone(),
            cache: ctx.cache.map(str::to_string),
            guardrails: ctx
                .guardrails
                .iter()
                .map(|(direction, f)| {
                    let kinds: Vec<String> = f.kinds().iter().map(|k| label(k)).collect();
                    format!(
                        "{direction}:{}:{}:{}",
                        label(f.guardrail()),
                        f.action(),
                        kinds.join("+")
                    )
                })
                .collect(),
        }
    }
}

/// A name as a field of a stored guardrail action: the separators `,` `:` `+` become `_`.
fn label(name: &str) -> String {
    name.replace([',', ':', '+'], "_")
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
    /// The queue to the writer; a `None` message asks it to finish.
    tx: SyncSender<Option<UsageRecord>>,
    /// Set by [`Ledger::close`]: later records go to the spill file.
    closed: AtomicBool,
    /// This run's random id prefix and the records numbered so far.
    id_prefix: u64,
    ids: AtomicU64,
    /// The spill file; its lock orders appends against the writer taking the file over.
    spill: Arc<Mutex<PathBuf>>,
    pub stats: Arc<LedgerStats>,
    /// The queue's receiving end until the writer starts ([`Ledger::run_writer`]).
    pending: Mutex<Option<Receiver<Option<UsageRecord>>>>,
    /// Where the ledger is kept, for the writer and for queries.
    pub settings: UsageSettings,
    /// Signalled when the writer has stored everything and stopped.
    stopped: Mutex<Option<Receiver<()>>>,
}

impl Ledger {
    /// Checks an embedded store (creating or migrating its schema, so a bad path fails at
    /// start; a database server that is down is not an error: records spill until it is
    /// back). Records queue until [`Ledger::run_writer`] starts the writer, which opens its
    /// own connection: a connection must not cross the fork into the background.
    pub fn open(settings: &UsageSettings) -> Result<Ledger, String> {
        if matches!(settings.store, UsageStore::Sqlite { .. }) {
            drop(store::open(&settings.store)?);
        }
        let (tx, rx) = sync_channel(QUEUE);
        Ok(Ledger {
            tx,
            closed: AtomicBool::new(false),
            id_prefix: rand::random::<u64>(),
            ids: AtomicU64::new(0),
            spill: Arc::new(Mutex::new(settings.spill.clone())),
            stats: Arc::new(LedgerStats::default()),
            pending: Mutex::new(Some(rx)),
            settings: settings.clone(),
            stopped: Mutex::new(None),
        })
    }

    /// Starts the writer on a thread of its own; a second call does nothing.
    pub fn run_writer(&self) -> Result<(), String> {
        let Some(rx) = lock(&self.pending).take() else {
            return Ok(());
        };
        let (done_tx, done_rx) = sync_channel(1);
        let mut writer =
            writer::Writer::new(&self.settings, self.spill.clone(), self.stats.clone());
        std::thread::Builder::new()
            .name("sluice-ledger".into())
            .spawn(move || {
                writer.run(rx);
                let _ = done_tx.send(());
            })
            .map_err(|e| format!("cannot start the ledger writer: {e}"))?;
        *lock(&self.stopped) = Some(done_rx);
        Ok(())
    }

    /// The next record id: 31 bits of this run's random prefix, then a 32-bit sequence
    /// number (after 2³² records the prefix moves on). Two runs share a prefix with odds of
    /// one in 2³¹.
    fn next_id(&self) -> u64 {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        let prefix = self.id_prefix.wrapping_add(n >> 32) & 0x7fff_ffff;
        (prefix << 32) | (n & 0xffff_ffff)
    }

    /// Queues a record; never waits. A full queue spills the record to the file.
    pub fn record(&self, mut rec: UsageRecord) {
        if rec.id == 0 {
            rec.id = self.next_id();
        }
        if self.closed.load(Ordering::Acquire) {
            return self.spill_one(rec);
        }
        match self.tx.try_send(Some(rec)) {
            Ok(()) => {}
            Err(TrySendError::Full(Some(rec))) | Err(TrySendError::Disconnected(Some(rec))) => {
                self.spill_one(rec)
            }
            Err(_) => {}
        }
    }

    fn spill_one(&self, rec: UsageRecord) {
        let path = lock(&self.spill);
        match writer::append(&path, &[rec]) {
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
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(done) = lock(&self.stopped).take() else {
            return;
        };
        // The end marker waits for room behind what is queued, as long as the writer runs.
        let deadline = std::time::Instant::now() + wait;
        loop {
            match self.tx.try_send(None) {
                Ok(()) => break,
                Err(TrySendError::Full(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(_) => return,
            }
        }
        let _ = done.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()));
    }
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

/// Runs a query against the store off the async workers.
pub async fn query<T: Send + 'static>(
    store: UsageStore,
    f: impl FnOnce(&mut dyn store::Store) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(move || f(store::open_read_only(&store)?.as_mut()))
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

    fn settings(dir: &std::path::Path) -> UsageSettings {
        let path = dir.join("usage.db");
        UsageSettings {
            spill: dir.join("usage.db.spill"),
            store: UsageStore::Sqlite { path },
            retention: Duration::from_secs(86_400 * 365 * 100),
            key_refresh: Duration::from_secs(2),
        }
    }

    #[test]
    fn a_full_queue_spills_and_the_writer_stores_everything_once() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(dir.path());
        let spill = settings.spill.clone();
        let ledger = Ledger::open(&settings).unwrap();
        // No writer yet: the queue fills, then records spill to the file.
        let n = QUEUE as u64 + 5;
        for i in 0..n {
            ledger.record(rec(i));
        }
        assert_eq!(ledger.stats.spilled.get(), 5);
        assert!(spill.exists());
        // A record spilled twice (a replay that failed late) is stored once.
        writer::append(&spill, &[rec(0)]).unwrap();
        ledger.run_writer().unwrap();
        ledger.close(Duration::from_secs(30));
        let mut store = store::open_read_only(&settings.store).unwrap();
        let rows = store.summary(0, &[query::Group::Key]).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].requests, n);
        assert_eq!(rows[0].prompt_tokens, 2 * n);
        assert!(!spill.exists(), "the spill file is replayed and removed");
        // After close, a late record spills rather than vanishing.
        ledger.record(rec(n));
        assert!(spill.exists());
    }

    #[test]
    fn a_version_1_store_is_migrated_and_keeps_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(dir.path());
        let UsageStore::Sqlite { path } = &settings.store else {
            panic!("an SQLite store")
        };
        {
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.execute_batch(sqlite::SCHEMA_V1).unwrap();
            conn.execute_batch(
                "INSERT INTO usage (id, ts_ms, request_id, key, api, stream, status, \
                 prompt_tokens, completion_tokens, cached_tokens, cost_usd, latency_ms, \
                 attempts, guardrails) VALUES (1, 5, 'r', 'old', 'openai', 0, 200, 1, 2, 0, \
                 0.5, 9, 1, ''); PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let mut store = store::open(&settings.store).unwrap();
        let mut new = rec(7);
        new.reasoning_tokens = 11;
        new.failovers = 1;
        new.limit = Some("key:requests".into());
        store.insert(&[new.clone()]).unwrap();
        let recent = store.recent(0, 10, false).unwrap();
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[0], new);
        assert_eq!(
            (recent[1].key.as_deref(), recent[1].reasoning_tokens),
            (Some("old"), 0)
        );
        // Opening again migrates nothing more.
        drop(store);
        assert_eq!(
            store::open(&settings.store)
                .unwrap()
                .recent(0, 10, true)
                .unwrap()
                .len(),
            0
        );
    }

    #[test]
    fn the_team_goes_from_the_context_to_the_spill_line_and_old_lines_still_replay() {
        let cfg = crate::config::parse(
            "listen: 127.0.0.1:8080\nallow_inline_secrets: true\n\
             keys:\n  - { name: a, key: fake-gateway-key-abcdefgh }\nproviders:\n  local: { kind: ollama }\n\
             models:\n  m:\n    - { provider: local, model: x }\n",
        )
        .unwrap();
        let mut ctx = Ctx::new();
        ctx.team = Some("search".into());
        let r = UsageRecord::from_ctx(&ctx, 200, &cfg);
        assert_eq!(r.team.as_deref(), Some("search"));
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.contains(r#""team":"search""#), "{line}");
        assert_eq!(serde_json::from_str::<UsageRecord>(&line).unwrap(), r);
        // A line spilled by an older sluice has no team.
        let mut old = serde_json::to_value(rec(1)).unwrap();
        old.as_object_mut().unwrap().remove("team");
        let old: UsageRecord = serde_json::from_value(old).unwrap();
        assert_eq!((old.team, old.request_id), (None, "r1".to_string()));
    }

    #[test]
    fn ids_are_consecutive_positive_and_kept_when_given() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&settings(dir.path())).unwrap();
        let a = ledger.next_id();
        let b = ledger.next_id();
        assert_eq!(b, a + 1);
        assert!(
            a as i64 > 0 && b as i64 > 0,
            "ids fit a signed 64-bit column"
        );
        // Past 2^32 records the prefix moves on; ids stay positive and distinct.
        ledger.ids.store(u32::MAX as u64, Ordering::Relaxed);
        let (c, d) = (ledger.next_id(), ledger.next_id());
        assert!(c as i64 > 0 && d as i64 > 0 && c != d && d & 0xffff_ffff == 0);
    }
}
