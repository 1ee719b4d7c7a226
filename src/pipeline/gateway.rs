//! Shared state of the client-facing service: the validated config, the resolver and the
//! upstream connection pool. One instance serves every request on every worker thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::server::configuration::ServerConf;

use super::keyring::KeyRing;
use crate::config::Config;
use crate::limits::Limiter;
use crate::pipeline::body::BodyBudget;
use crate::routing::Router;
use crate::telemetry::Metrics;
use crate::upstream::Resolver;

pub struct Gateway {
    pub cfg: Arc<Config>,
    /// The gateway keys, with their compiled guardrail policies.
    pub keys: KeyRing,
    /// Provider host names → addresses; the same cache serves the health checks.
    pub resolver: Arc<Resolver>,
    /// Deployments and their health, shared with the health checker and the admin listener.
    pub router: Arc<Router>,
    /// Pooled upstream connections (keep-alive), shared by all workers.
    pub connector: Connector,
    pub metrics: Arc<Metrics>,
    /// Requests being served, for draining on shutdown.
    pub in_flight: Arc<InFlight>,
    /// Unix time sluice started; the `created` of every model in `/v1/models`.
    pub started_unix: u64,
    /// Rate limits, token and spend budgets, concurrency caps.
    pub limiter: Limiter,
    /// The usage ledger, when `usage:` is configured.
    pub ledger: Option<Arc<crate::ledger::Ledger>>,
    /// Request-body bytes all requests in flight may hold.
    pub body_budget: Arc<BodyBudget>,
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
        Gateway {
            keys: KeyRing::new(&cfg),
            ledger: None,
            body_budget: BodyBudget::new(cfg.limits.max_inflight_body_bytes, metrics.clone()),
            resolver,
            router,
            in_flight,
            metrics,
            connector: Connector::new(Some(opts)),
            limiter,
            cfg,
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
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
