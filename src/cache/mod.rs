//! The response cache: complete, successful answers kept by the digest of everything that
//! makes them what they are ([`key`]), in this process ([`Store::Memory`], bounded by bytes,
//! least recently used evicted first) or in a Redis server every instance shares
//! ([`shared`]). Entries are the answer in sluice's internal form — the OpenAI chat completion
//! (or embeddings answer), usage included — so that a hit is rendered for any client API,
//! whole or as a stream, by the same encoders as a live answer. The store is process-wide: it
//! outlives a config reload that leaves `cache:` as it was.

pub mod assemble;
pub mod key;
mod shared;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};

use crate::config::{CacheBackend, CacheSettings};
pub use key::CacheKey;

/// The cache's metrics, registered once per process.
pub struct CacheMetrics {
    /// Lookups by result: `hit`, `miss`, `bypass` (not looked up: the client asked, the key
    /// or model is not cached, the backend failed).
    pub lookups: IntCounterVec,
    /// Answers stored.
    pub stores: IntCounter,
    /// Backend operations that failed (the request went to the provider).
    pub errors: IntCounterVec,
    /// Bytes held by the memory backend.
    pub bytes: IntGauge,
}

impl CacheMetrics {
    pub fn new() -> Self {
        let opts = |name: &str, help: &str| Opts::new(name, help).namespace("sluice");
        CacheMetrics {
            lookups: IntCounterVec::new(
                opts(
                    "cache_lookups_total",
                    "Response cache lookups by result: hit, miss, bypass (not looked up).",
                ),
                &["result"],
            )
            .expect("valid metric"),
            stores: IntCounter::with_opts(opts(
                "cache_stores_total",
                "Answers stored in the response cache.",
            ))
            .expect("valid metric"),
            errors: IntCounterVec::new(
                opts(
                    "cache_errors_total",
                    "Response cache backend operations that failed; the request was served \
                     by the provider.",
                ),
                &["backend"],
            )
            .expect("valid metric"),
            bytes: IntGauge::with_opts(opts(
                "cache_bytes",
                "Bytes held by the in-memory response cache.",
            ))
            .expect("valid metric"),
        }
    }

    /// The collectors, for the metrics registry.
    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.lookups.clone()),
            Box::new(self.stores.clone()),
            Box::new(self.errors.clone()),
            Box::new(self.bytes.clone()),
        ]
    }
}

impl Default for CacheMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Unix second of the last backend failure logged.
static LAST_LOG: AtomicU64 = AtomicU64::new(0);

/// Whether a backend failure may be logged now: one line per 10 seconds, so that a dead
/// Redis does not write a line per request.
fn log_allowed() -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LAST_LOG.load(Ordering::Relaxed);
    now >= last + 10
        && LAST_LOG
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// Where entries are kept.
enum Store {
    Memory(moka::sync::Cache<CacheKey, Bytes>),
    Redis(Box<shared::RedisCache>),
}

/// Bytes an entry costs beyond its value (its key and the bookkeeping around it).
const ENTRY_OVERHEAD: usize = 96;

/// The response cache of one `cache:` setting.
pub struct Cache {
    settings: CacheSettings,
    store: Store,
    metrics: Arc<CacheMetrics>,
}

impl Cache {
    pub fn new(settings: &CacheSettings, metrics: Arc<CacheMetrics>) -> Result<Cache, String> {
        let store = match &settings.backend {
            CacheBackend::Memory { max_bytes } => Store::Memory(
                moka::sync::Cache::builder()
                    .max_capacity(*max_bytes)
                    .weigher(|_k, v: &Bytes| {
                        u32::try_from(v.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
                    })
                    .time_to_live(settings.ttl)
                    .build(),
            ),
            CacheBackend::Redis { url, timeout } => Store::Redis(Box::new(
                shared::RedisCache::new(url, *timeout, settings.ttl)?,
            )),
        };
        Ok(Cache {
            settings: settings.clone(),
            store,
            metrics,
        })
    }

    /// The settings this cache was built from.
    pub fn settings(&self) -> &CacheSettings {
        &self.settings
    }

    /// Whether answers of the public model `model` are cached (`cache.models`).
    pub fn covers(&self, model: &str) -> bool {
        self.settings
            .models
            .as_ref()
            .is_none_or(|m| m.iter().any(|n| n == model))
    }

    pub fn metrics(&self) -> &CacheMetrics {
        &self.metrics
    }

    /// The backend's name, for metrics and logs.
    fn backend(&self) -> &'static str {
        match self.store {
            Store::Memory(_) => "memory",
            Store::Redis(_) => "redis",
        }
    }

    /// The entry stored under `key`; `Err` when the backend failed (counted and logged).
    pub async fn get(&self, key: &CacheKey) -> Result<Option<Bytes>, ()> {
        match &self.store {
            Store::Memory(m) => Ok(m.get(key)),
            Store::Redis(r) => r.get(key).await.map_err(|e| self.failed("lookup", &e)),
        }
    }

    /// Stores `value` under `key` for the TTL; a failure is counted and logged, never
    /// the request's.
    pub async fn put(&self, key: CacheKey, value: Bytes) {
        match &self.store {
            Store::Memory(m) => {
                m.insert(key, value);
                m.run_pending_tasks();
                self.metrics.bytes.set(m.weighted_size() as i64);
            }
            Store::Redis(r) => {
                if let Err(e) = r.put(&key, &value).await {
                    self.failed("store", &e);
                    return;
                }
            }
        }
        self.metrics.stores.inc();
    }

    /// Counts a backend failure; one log line per 10 seconds at most.
    fn failed(&self, op: &str, e: &str) {
        self.metrics
            .errors
            .with_label_values(&[self.backend()])
            .inc();
        if log_allowed() {
            log::warn!(
                "response cache ({}) {op} failed, the request goes to the provider: {e}",
                self.backend()
            );
        }
    }
}
