//! Shared state of the client-facing service. A [`Gateway`] is one *generation*: the
//! validated config with what was built from it (key ring, router, limiter), plus the
//! process-wide parts every generation shares (resolver, upstream pool, metrics, ledger).
//! [`Live`] holds the current generation; a request takes it when it starts and keeps it to
//! its end, so a config reload or a managed-key change never alters a request in flight.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::connectors::ConnectorOptions;
use pingora::server::configuration::ServerConf;

use super::keyring::KeyRing;
use crate::cache::{Cache, CacheMetrics};
use crate::config::Config;
use crate::limits::Limiter;
use crate::pipeline::body::BodyBudget;
use crate::routing::Router;
use crate::telemetry::Metrics;
use crate::upstream::{Dialer, Resolver};

pub struct Gateway {
    pub cfg: Arc<Config>,
    /// The gateway keys, with their compiled guardrail policies.
    pub keys: Arc<KeyRing>,
    /// Provider host names → addresses; the same cache serves the health checks.
    pub resolver: Arc<Resolver>,
    /// Deployments and their health, shared with the health checker and the admin listener.
    pub router: Arc<Router>,
    /// Pooled upstream connections (keep-alive, HTTP/2), shared by all workers.
    pub connector: Arc<Dialer>,
    pub metrics: Arc<Metrics>,
    /// Requests being served, for draining on shutdown.
    pub in_flight: Arc<InFlight>,
    /// Unix time sluice started; the `created` of every model in `/v1/models`.
    pub started_unix: u64,
    /// Rate limits, token and spend budgets, concurrency caps.
    pub limiter: Limiter,
    /// The usage ledger, when `usage:` is configured.
    pub ledger: Option<Arc<crate::ledger::Ledger>>,
    /// OpenTelemetry traces, when `tracing:` is configured (read at start).
    pub tracer: Option<Arc<crate::trace::Tracer>>,
    /// Request-body bytes all requests in flight may hold.
    pub body_budget: Arc<BodyBudget>,
    /// Counts generations from 1 (the config sluice started with).
    pub generation: u64,
    /// The response cache, when `cache:` is configured. Process-wide: a generation whose
    /// `cache:` is unchanged keeps its predecessor's entries.
    pub cache: Option<Arc<Cache>>,
    /// The cache's metrics, registered once.
    pub cache_metrics: Arc<CacheMetrics>,
}

impl Gateway {
    pub fn new(
        cfg: Arc<Config>,
        router: Arc<Router>,
        in_flight: Arc<InFlight>,
        metrics: Arc<Metrics>,
        limiter: Limiter,
        resolver: Arc<Resolver>,
        server_conf: &ServerConf,
    ) -> Self {
        let mut opts = ConnectorOptions::from_server_conf(server_conf);
        opts.ca_file = cfg.upstream.ca_file.clone();
        let cache_metrics = Arc::new(CacheMetrics::new());
        for c in cache_metrics.collectors() {
            metrics.register(c);
        }
        Gateway {
            cache: build_cache(&cfg, &cache_metrics),
            cache_metrics,
            keys: Arc::new(KeyRing::new(&cfg, &[])),
            ledger: None,
            tracer: None,
            body_budget: BodyBudget::new(cfg.limits.max_inflight_body_bytes, metrics.clone()),
            resolver,
            router,
            in_flight,
            metrics,
            connector: Arc::new(Dialer::new(opts)),
            limiter,
            cfg,
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            generation: 1,
        }
    }

    /// The next generation: `cfg` with what was built from it, and this one's process-wide
    /// parts.
    pub fn next(
        &self,
        cfg: Arc<Config>,
        keys: Arc<KeyRing>,
        router: Arc<Router>,
        limiter: Limiter,
    ) -> Gateway {
        let cache = if cfg.cache == self.cfg.cache {
            self.cache.clone()
        } else {
            build_cache(&cfg, &self.cache_metrics)
        };
        Gateway {
            cache,
            cache_metrics: self.cache_metrics.clone(),
            cfg,
            keys,
            router,
            limiter,
            resolver: self.resolver.clone(),
            connector: self.connector.clone(),
            metrics: self.metrics.clone(),
            in_flight: self.in_flight.clone(),
            started_unix: self.started_unix,
            ledger: self.ledger.clone(),
            tracer: self.tracer.clone(),
            body_budget: self.body_budget.clone(),
            generation: self.generation + 1,
        }
    }
}

/// The response cache `cfg` asks for; `None` (with a log line) when it cannot be built.
fn build_cache(cfg: &Config, metrics: &Arc<CacheMetrics>) -> Option<Arc<Cache>> {
    let settings = cfg.cache.as_ref()?;
    match Cache::new(settings, metrics.clone()) {
        Ok(c) => Some(Arc::new(c)),
        Err(e) => {
            log::error!("the response cache is off: {e}");
            None
        }
    }
}

/// The current generation, swapped atomically; readers never wait.
pub struct Live(ArcSwap<Gateway>);

impl Live {
    pub fn new(gw: Gateway) -> Arc<Live> {
        Arc::new(Live(ArcSwap::from_pointee(gw)))
    }

    /// The generation new requests use.
    pub fn current(&self) -> Arc<Gateway> {
        self.0.load_full()
    }

    /// Makes `gw` current. Requests that started before keep theirs.
    pub fn swap(&self, gw: Gateway) {
        self.0.store(Arc::new(gw));
    }
}

/// Requests currently being served.
#[derive(Default)]
pub struct InFlight(AtomicUsize);

/// Holds one unit of [`InFlight`] while it lives.
pub struct InFlightGuard(Arc<InFlight>);

impl InFlight {
    pub fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }

    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::SeqCst);
    }
}
