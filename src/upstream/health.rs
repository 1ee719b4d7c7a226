//! Active health checks: a background service that asks every provider a cheap question
//! (`GET <base>/models` by default) at a fixed interval. A provider that fails
//! `unhealthy_threshold` checks in a row (no connection, a timeout or a 5xx) is taken out of
//! rotation until it passes `healthy_threshold` checks; any answer below 500 counts as alive,
//! since a 401 or 404 there says nothing about serving chat requests. Passive health (failed
//! requests, `Retry-After`) is in `routing`.

use std::sync::Arc;

use async_trait::async_trait;
use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::config::{Config, HealthCheckSettings, Provider};
use crate::providers::Wire;
use crate::routing::{ProviderHealth, Router};
use crate::upstream::{self, read_final_header, request_header, Resolver};

pub struct HealthChecker {
    cfg: Arc<Config>,
    settings: HealthCheckSettings,
    router: Arc<Router>,
    resolver: Arc<Resolver>,
    connector: Connector,
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
        Some(HealthChecker {
            resolver,
            connector: Connector::new(Some(opts)),
            settings,
            router,
            cfg,
        })
    }

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

    async fn check(&self, p: &ProviderHealth) {
        let result =
            match tokio::time::timeout(self.settings.timeout, self.probe(&p.provider)).await {
                Ok(r) => r,
                Err(_) => Err(format!("timed out after {:?}", self.settings.timeout)),
            };
        let failed = result.as_ref().err().cloned();
        match p.record_check(
            result,
            self.settings.unhealthy_threshold,
            self.settings.healthy_threshold,
        ) {
            Some(false) => log::warn!(
                "provider '{}' failed its health checks ({}): taken out of rotation",
                p.provider.name,
                failed.unwrap_or_default()
            ),
            Some(true) => log::info!("provider '{}' is healthy again", p.provider.name),
            None => {}
        }
    }
}

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(self.settings.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let providers: Vec<&Arc<ProviderHealth>> = self.router.providers().collect();
            let checks = providers.iter().map(|p| self.check(p));
            // Providers are checked side by side: a dead one does not delay the others.
            join_all(checks).await;
        }
    }
}

/// Runs futures concurrently on this task and waits for all of them.
async fn join_all<F: std::future::Future<Output = ()>>(futs: impl Iterator<Item = F>) {
    let mut futs: Vec<std::pin::Pin<Box<F>>> = futs.map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        futs.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if futs.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}
