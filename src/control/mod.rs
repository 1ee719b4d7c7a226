//! The control plane: what changes while sluice runs, without a restart and without touching
//! requests in flight.
//!
//! - **Config reload** ([`Control::reload`]): SIGHUP (what `systemctl reload` sends) and
//!   `POST /reload` re-read the config file, validate it with the same validator as
//!   `sluice check`, and make a new generation current ([`crate::pipeline::gateway::Live`]):
//!   providers, models, deployments, limits, guardrails, keys. Requests in flight finish on
//!   the generation they started with. An invalid file changes nothing (a log line per
//!   error, `sluice_config_reloads_total{result="error"}`). Listeners, TLS, `server:`,
//!   `admin:`, `upstream:`, `usage:` and the connection timeouts are read once: changing them needs
//!   an upgrade (`sluice run --upgrade`), and a reload says which changed.
//! - **Managed keys** ([`keys`], [`sync`]): keys created, revoked and rotated through the
//!   admin API or `sluice keys`, stored in the usage store. Every instance sharing the store
//!   polls it (`usage.key_refresh`, 2 s by default), so a change made on one host holds on
//!   all within that interval plus one query.

pub mod api;
pub mod cli;
pub mod keys;
pub mod signal;
pub mod sync;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use prometheus::{IntCounterVec, IntGauge, Opts};
use tokio::sync::{watch, Notify};

use crate::config::{Config, UsageStore};
use crate::core::sync::lock;
use crate::ledger::keys::{KeyStore, KeyStoreError};
use crate::limits::LimitSet;
use crate::pipeline::gateway::{Gateway, Live};
use crate::pipeline::keyring::{KeyRing, ManagedKey};
use crate::routing::Router;

/// A generation's config and router: what the health checks check.
pub type Routing = (Arc<Config>, Arc<Router>);

/// The managed keys in force, with their own limits.
type Managed = Vec<(ManagedKey, Option<LimitSet>)>;

/// Counters and gauges of the control plane.
pub struct ControlStats {
    pub reloads: IntCounterVec,
    pub generation: IntGauge,
    pub last_reload: IntGauge,
    pub managed_keys: IntGauge,
    pub key_sync_failures: IntCounterVec,
}

impl ControlStats {
    fn new() -> Self {
        let gauge = |name: &str, help: &str| {
            IntGauge::with_opts(Opts::new(name, help)).expect("valid metric")
        };
        ControlStats {
            reloads: IntCounterVec::new(
                Opts::new(
                    "sluice_config_reloads_total",
                    "Config reloads (SIGHUP or POST /reload), by result: ok or error.",
                ),
                &["result"],
            )
            .expect("valid metric"),
            generation: gauge(
                "sluice_config_generation",
                "The generation serving new requests (1 = the config sluice started with; \
                 config reloads and managed-key changes each make one).",
            ),
            last_reload: gauge(
                "sluice_config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful config reload (0: none since start).",
            ),
            managed_keys: gauge(
                "sluice_managed_keys",
                "Managed keys in force (not revoked) as of the last sync with the store.",
            ),
            key_sync_failures: IntCounterVec::new(
                Opts::new(
                    "sluice_key_sync_failures_total",
                    "Polls of the managed-key store that failed (the keys in force stay).",
                ),
                &["store"],
            )
            .expect("valid metric"),
        }
    }

    /// The collectors, for the metrics registry.
    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.reloads.clone()),
            Box::new(self.generation.clone()),
            Box::new(self.last_reload.clone()),
            Box::new(self.managed_keys.clone()),
            Box::new(self.key_sync_failures.clone()),
        ]
    }
}

/// What a successful reload did.
#[derive(Debug)]
pub struct Reloaded {
    pub generation: u64,
    /// Settings that changed in the file but only take effect after an upgrade.
    pub needs_upgrade: Vec<&'static str>,
}

pub struct Control {
    live: Arc<Live>,
    /// The config file, re-read on reload.
    path: PathBuf,
    /// The managed keys in force; held while a new generation is built, so reloads and key
    /// changes apply one at a time, each on top of the last.
    managed: tokio::sync::Mutex<Managed>,
    /// The config and router of the current generation, for the health checks.
    routers: watch::Sender<Routing>,
    /// Where managed keys live, when `usage:` is configured.
    store: Option<UsageStore>,
    /// The open key store, reused between calls (reopened after a failure).
    conn: Arc<Mutex<Option<Box<dyn KeyStore>>>>,
    /// Wakes the key sync at once (after a change made here).
    pub(crate) refresh: Notify,
    pub stats: ControlStats,
}

impl Control {
    pub fn new(live: Arc<Live>, path: PathBuf) -> Arc<Control> {
        let gw = live.current();
        let stats = ControlStats::new();
        stats.generation.set(gw.generation as i64);
        Arc::new(Control {
            store: gw.cfg.usage.as_ref().map(|u| u.store.clone()),
            routers: watch::Sender::new((gw.cfg.clone(), gw.router.clone())),
            live,
            path,
            managed: tokio::sync::Mutex::new(Vec::new()),
            conn: Arc::new(Mutex::new(None)),
            refresh: Notify::new(),
            stats,
        })
    }

    /// The generation serving new requests.
    pub fn current(&self) -> Arc<Gateway> {
        self.live.current()
    }

    /// The current config and router, and each pair a reload makes after them.
    pub fn routers(&self) -> watch::Receiver<Routing> {
        self.routers.subscribe()
    }

    /// Re-reads and validates the config file and, if it is valid, makes it current.
    /// `trigger` names who asked (`SIGHUP`, or the admin token's name) for the log.
    pub async fn reload(&self, trigger: &str) -> Result<Reloaded, Vec<String>> {
        let path = self.path.clone();
        let loaded = tokio::task::spawn_blocking(move || crate::config::load(&path))
            .await
            .map_err(|e| vec![format!("the config could not be read: {e}")])?;
        let cfg = match loaded {
            Ok(cfg) => cfg,
            Err(e) => {
                self.stats.reloads.with_label_values(&["error"]).inc();
                let errors: Vec<String> = e.to_string().lines().map(str::to_string).collect();
                for line in &errors {
                    log::error!(
                        "config reload ({trigger}) refused, the running config stays: {line}"
                    );
                }
                return Err(errors);
            }
        };
        let managed = self.managed.lock().await;
        let prev = self.live.current();
        let needs_upgrade = needs_upgrade(&prev.cfg, &cfg);
        let cfg = Arc::new(cfg);
        let router = Arc::new(Router::after(&cfg, &prev.router));
        let next = match build(&prev, cfg.clone(), router.clone(), &managed) {
            Ok(gw) => gw,
            Err(e) => {
                self.stats.reloads.with_label_values(&["error"]).inc();
                log::error!("config reload ({trigger}) refused, the running config stays: {e}");
                return Err(vec![e]);
            }
        };
        let generation = next.generation;
        let (models, keys) = (next.cfg.models.len(), next.cfg.keys.len());
        self.live.swap(next);
        self.routers.send_replace((cfg, router));
        self.stats.reloads.with_label_values(&["ok"]).inc();
        self.stats.generation.set(generation as i64);
        self.stats.last_reload.set(unix_secs() as i64);
        log::info!(
            "config reloaded ({trigger}): generation {generation}, {models} models, {keys} \
             config keys; requests in flight finish on the previous one"
        );
        if !needs_upgrade.is_empty() {
            log::warn!(
                "config reload ({trigger}): {} changed but take effect only after an upgrade \
                 (sluice run --upgrade) or a restart",
                needs_upgrade.join(", ")
            );
        }
        Ok(Reloaded {
            generation,
            needs_upgrade,
        })
    }

    /// Puts `managed` in force (unless it is what is in force already).
    pub(crate) async fn apply_keys(&self, managed: Managed) {
        let mut current = self.managed.lock().await;
        if *current == managed {
            return;
        }
        let prev = self.live.current();
        match build(&prev, prev.cfg.clone(), prev.router.clone(), &managed) {
            Ok(next) => {
                self.stats.generation.set(next.generation as i64);
                self.stats.managed_keys.set(managed.len() as i64);
                log::info!(
                    "managed keys: {} in force (generation {})",
                    managed.len(),
                    next.generation
                );
                self.live.swap(next);
                *current = managed;
            }
            Err(e) => log::error!("managed keys not applied: {e}"),
        }
    }

    /// Runs `f` on the key store off the async workers. The connection is kept for the next
    /// call, and dropped (to be reopened) when a call fails in the store.
    pub async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn KeyStore) -> Result<T, KeyStoreError> + Send + 'static,
    ) -> Result<T, KeyStoreError> {
        let Some(store) = self.store.clone() else {
            return Err(KeyStoreError::Backend(
                "managed keys need the usage store (no `usage:` in the config)".into(),
            ));
        };
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = lock(&conn);
            if guard.is_none() {
                *guard =
                    Some(crate::ledger::keys::open_keys(&store).map_err(KeyStoreError::Backend)?);
            }
            let result = f(guard.as_mut().expect("opened above").as_mut());
            if matches!(result, Err(KeyStoreError::Backend(_))) {
                *guard = None;
            }
            result
        })
        .await
        .map_err(|e| KeyStoreError::Backend(format!("the key store call failed: {e}")))?
    }

    /// Whether managed keys are available (a usage store is configured).
    pub fn has_store(&self) -> bool {
        self.store.is_some()
    }
}

/// The next generation after `prev`: `cfg` with `router`, the managed keys' limits added to
/// the config's, and a key ring of both.
fn build(
    prev: &Gateway,
    cfg: Arc<Config>,
    router: Arc<Router>,
    managed: &Managed,
) -> Result<Gateway, String> {
    let mut limits = cfg.rate_limits.clone();
    for (key, set) in managed {
        if !cfg.keys.iter().any(|k| k.name == key.name) {
            let set = set.clone().unwrap_or_else(|| limits.default.clone());
            limits.keys.insert(key.name.clone(), set);
        }
    }
    let limiter = prev
        .limiter
        .reconfigured(&limits)
        .map_err(|e| e.to_string())?;
    let keys: Vec<ManagedKey> = managed.iter().map(|(k, _)| k.clone()).collect();
    let ring = Arc::new(KeyRing::new(&cfg, &keys));
    Ok(prev.next(cfg, ring, router, limiter))
}

/// The settings read once at start that differ between `old` and `new`.
fn needs_upgrade(old: &Config, new: &Config) -> Vec<&'static str> {
    let d = |v: &dyn std::fmt::Debug| format!("{v:?}");
    let mut changed = Vec::new();
    let pairs: [(&'static str, String, String); 8] = [
        ("listen", d(&old.listen), d(&new.listen)),
        ("tls", d(&old.tls), d(&new.tls)),
        ("admin", d(&old.admin), d(&new.admin)),
        ("server", d(&old.server), d(&new.server)),
        ("upstream", d(&old.upstream), d(&new.upstream)),
        ("usage", d(&old.usage), d(&new.usage)),
        (
            "timeouts.request_header / client_idle",
            d(&(old.timeouts.request_header, old.timeouts.client_idle)),
            d(&(new.timeouts.request_header, new.timeouts.client_idle)),
        ),
        (
            "limits.max_inflight_body_bytes",
            d(&old.limits.max_inflight_body_bytes),
            d(&new.limits.max_inflight_body_bytes),
        ),
    ];
    for (name, a, b) in pairs {
        if a != b {
            changed.push(name);
        }
    }
    // Compared by value: a changed header secret prints the same as the old one.
    if old.tracing != new.tracing {
        changed.push("tracing");
    }
    changed
}

/// Unix time in seconds.
fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
