//! Active health checks: a background service that asks every provider a cheap question
//! (`GET <base>/models` by default) at a fixed interval. A provider that fails
//! `unhealthy_threshold` checks in a row (no connection, a timeout or a 5xx) is taken out of
//! rotation until it passes `healthy_threshold` checks; any answer below 500 counts as alive,
//! since a 401 or 404 there says nothing about serving chat requests. Passive health (failed
//! requests, `Retry-After`) is in `routing`.
//!
//! The machinery is pingora-load-balancing's: one [`HealthRegistry`] holds a target per
//! provider, a [`HealthCheckService`] runs the passes (all providers side by side, the first at
//! once on start, the next `interval` after a pass ends), and the registry's health state
//! counts the consecutive results against the thresholds and flips. sluice brings the check
//! itself ([`ProviderCheck`]: its own HTTP request, under `timeout`) and, on a flip, sets the
//! [`ProviderHealth`] the router reads. What stays here and why: docs/ARCHITECTURE.md,
//! "pingora-load-balancing".

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::net::{Ipv6Addr, SocketAddr as InetAddr};
use std::sync::Arc;

use async_trait::async_trait;
use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::lb::discovery::Static;
use pingora::lb::health_check::HealthCheck;
use pingora::lb::{Backend, BackendView, Extensions, HealthCheckService, HealthRegistry};
use pingora::protocols::l4::socket::SocketAddr;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::{Error, ErrorType};

use crate::config::{Config, HealthCheckSettings, Provider};
use crate::providers::Wire;
use crate::routing::{ProviderHealth, Router};
use crate::upstream::{self, read_final_header, request_header, Resolver};

/// The active checks: pingora-load-balancing's [`HealthCheckService`] over one registry whose
/// targets are the providers.
pub struct HealthChecker {
    /// The registry counts a view's members as targets only while the view lives, so the
    /// checker keeps it.
    view: BackendView,
    service: HealthCheckService,
}

/// What a provider's [`Backend`] carries in `ext`.
#[derive(Clone)]
struct Target {
    /// The registry's equivalence key: one per provider.
    key: u64,
    health: Arc<ProviderHealth>,
}

impl HealthChecker {
    /// `None` when active checks are disabled.
    pub fn new(
        cfg: Arc<Config>,
        router: Arc<Router>,
        resolver: Arc<Resolver>,
        opts: ConnectorOptions,
    ) -> Option<Self> {
        let settings = cfg.health.check.clone()?;
        let interval = settings.interval;
        // Health is keyed by provider, not by address: two providers on one host (two API
        // keys on api.openai.com, say) are two targets with a health of their own.
        let registry = Arc::new(HealthRegistry::with_equivalence(provider_key));
        registry.set_health_check(Box::new(ProviderCheck {
            resolver,
            connector: Connector::new(Some(opts)),
            settings,
            cfg,
        }));
        let targets: BTreeSet<Backend> = router
            .providers()
            .enumerate()
            .map(|(i, p)| provider_backend(i as u64, p))
            .collect();
        let view = BackendView::new_with_health_registry(Static::new(targets), registry.clone());
        let mut service = HealthCheckService::new(registry);
        service.health_check_frequency = Some(interval);
        service.parallel_health_check = true;
        Some(HealthChecker { view, service })
    }
}

/// The [`Backend`] standing for the provider at `index` (in the router's provider order).
///
/// Its `addr` is a placeholder, never dialled: [`ProviderCheck`] resolves the provider's host
/// itself at check time (the shared [`Resolver`], the provider's TLS and SNI settings), as
/// requests do, and a host may have several addresses or change them. The placeholder is
/// `[2001:db8::<index>]:0` (the IPv6 documentation prefix): distinct for every provider,
/// because `Backend` equality and ordering look at `addr` and `weight` only — not `ext` — and
/// two providers with one address would otherwise collapse into one member of the view.
fn provider_backend(index: u64, health: &Arc<ProviderHealth>) -> Backend {
    let ip = Ipv6Addr::from((0x2001_0db8_u128 << 96) | u128::from(index));
    let mut ext = Extensions::new();
    ext.insert(Target {
        key: index,
        health: health.clone(),
    });
    Backend {
        addr: SocketAddr::Inet(InetAddr::new(ip.into(), 0)),
        weight: 1,
        ext,
    }
}

/// The registry's equivalence key: the provider a [`Backend`] stands for.
fn provider_key(b: &Backend) -> u64 {
    match b.ext.get::<Target>() {
        Some(t) => t.key,
        // Not a provider's backend (none is made without a Target): its own identity.
        None => {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            b.hash(&mut h);
            h.finish()
        }
    }
}

fn target(b: &Backend) -> Option<&Arc<ProviderHealth>> {
    b.ext.get::<Target>().map(|t| &t.health)
}

impl HealthChecker {
    async fn run(&self, shutdown: ShutdownWatch) {
        // Publishes the providers to the registry, so the service's first pass (at once)
        // checks them all. Static discovery does not fail.
        if let Err(e) = self.view.update(|_| {}).await {
            log::error!("health checks: cannot list the providers: {e}");
            return;
        }
        self.service.run(shutdown, None).await;
    }
}

/// The active checks of whichever config is current: a config reload ends the checks of
/// the previous one and starts checks of the new providers (whose health carried over).
pub struct HealthChecks {
    pub routing: tokio::sync::watch::Receiver<(Arc<Config>, Arc<Router>)>,
    pub resolver: Arc<Resolver>,
    pub opts: ConnectorOptions,
}

#[async_trait]
impl BackgroundService for HealthChecks {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut routing = self.routing.clone();
        loop {
            let (cfg, router) = routing.borrow_and_update().clone();
            let mut opts = self.opts.clone();
            opts.ca_file = cfg.upstream.ca_file.clone();
            let checker = HealthChecker::new(cfg, router, self.resolver.clone(), opts);
            // The checks of this generation stop when their own watch says so.
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let checks = async {
                match &checker {
                    Some(c) => c.run(stopped).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = checks => return,
                changed = routing.changed() => {
                    let _ = stop.send(true);
                    if changed.is_err() {
                        return;
                    }
                }
                _ = shutdown.changed() => {
                    let _ = stop.send(true);
                    return;
                }
            }
        }
    }
}

/// sluice's check of one provider: its own HTTP request under `timeout`.
struct ProviderCheck {
    cfg: Arc<Config>,
    settings: HealthCheckSettings,
    resolver: Arc<Resolver>,
    connector: Connector,
}

impl ProviderCheck {
    async fn probe(&self, provider: &Provider) -> Result<(), String> {
        let addr = self.resolver.resolve(provider).await?;
        let peer = upstream::peer(provider, addr, &self.cfg);
        let path = format!(
            "{}{}",
            provider.api_root,
            self.settings
                .path
                .as_deref()
                .unwrap_or(Wire::of(provider.kind).health_path())
        );
        let header = request_header(provider, "GET", &path, None, false, "sluice-health-check")
            .map_err(|e| e.message)?;
        let (mut up, _) = self
            .connector
            .get_http_session(&peer)
            .await
            .map_err(|e| format!("connect: {}", e.etype().as_str()))?;
        up.write_request_header(Box::new(header))
            .await
            .map_err(|e| format!("send: {}", e.etype().as_str()))?;
        up.finish_request_body()
            .await
            .map_err(|e| format!("send: {}", e.etype().as_str()))?;
        read_final_header(&mut up)
            .await
            .map_err(|e| format!("response: {}", e.etype().as_str()))?;
        let status = up.response_header().map_or(0, |h| h.status.as_u16());
        // Read (and bound) the body so the connection can be reused.
        let mut left = 1usize << 20;
        while let Ok(Some(b)) = up.read_response_body().await {
            left = left.saturating_sub(b.len());
            if left == 0 {
                break;
            }
        }
        if up.response_done() {
            self.connector
                .release_http_session(up, &peer, Some(self.settings.interval * 2))
                .await;
        }
        if (1..500).contains(&status) {
            Ok(())
        } else {
            Err(format!("HTTP {status}"))
        }
    }
}

#[async_trait]
impl HealthCheck for ProviderCheck {
    async fn check(&self, target: &Backend) -> pingora::Result<()> {
        let Some(p) = self::target(target) else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "health check target is not a provider",
            ));
        };
        let result =
            match tokio::time::timeout(self.settings.timeout, self.probe(&p.provider)).await {
                Ok(r) => r,
                Err(_) => Err(format!("timed out after {:?}", self.settings.timeout)),
            };
        result.map_err(|e| {
            p.record_check_error(e.clone());
            Error::explain(ErrorType::Custom("health check failed"), e)
        })
    }

    fn health_threshold(&self, success: bool) -> usize {
        let n = if success {
            self.settings.healthy_threshold
        } else {
            self.settings.unhealthy_threshold
        };
        n as usize
    }

    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        let Some(p) = self::target(target) else {
            return;
        };
        if healthy {
            p.set_healthy(true);
            log::info!("provider '{}' is healthy again", p.provider.name);
        } else {
            p.set_healthy(false);
            log::warn!(
                "provider '{}' failed its health checks ({}): taken out of rotation",
                p.provider.name,
                p.last_check_error().unwrap_or_default()
            );
        }
    }

    /// Names the provider in pingora-load-balancing's own line on a flip, which the process
    /// log drops (`telemetry::logger`) since the line above says it already.
    fn backend_summary(&self, target: &Backend) -> String {
        match self::target(target) {
            Some(p) => format!("provider '{}'", p.provider.name),
            None => format!("{target:?}"),
        }
    }
}
