//! Routing: which deployment serves an attempt, and the health state behind that choice.
//!
//! Each public model has deployments in priority tiers. An attempt goes to an *available*
//! deployment (its provider passes active checks and it is not cooling down) of the lowest tier
//! that has one, chosen by weight and in-flight load ("power of two choices": two weighted
//! random picks, the less loaded per unit of weight wins). Failures feed passive health: a
//! 429/503/529 — or `failure_threshold` consecutive failures — puts a deployment into cooldown,
//! for the provider's `Retry-After` when it gave one. All state is atomics: no lock is taken on
//! the request path.

mod budget;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{json, Value};

pub use budget::RetryBudget;

use crate::config::{Config, Deployment, HealthSettings, Provider, Route};
use crate::core::sync::lock;

/// Health of a provider as the active checks see it. The checks themselves — their schedule
/// and the consecutive results that flip the state — are pingora-load-balancing's (see
/// `upstream::health`); this is the state the router and the admin view read.
#[derive(Debug)]
pub struct ProviderHealth {
    pub provider: Arc<Provider>,
    healthy: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl ProviderHealth {
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Records why an active check failed, for the admin view.
    pub fn record_check_error(&self, error: String) {
        *lock(&self.last_error) = Some(error);
    }

    /// The error of the last failed check since the provider was last found healthy.
    pub fn last_check_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    /// Takes the provider out of rotation or puts it back; back in rotation clears the last
    /// check error.
    pub fn set_healthy(&self, healthy: bool) {
        if healthy {
            *lock(&self.last_error) = None;
        }
        self.healthy.store(healthy, Ordering::Relaxed);
    }
}

/// A deployment and its live state.
#[derive(Debug)]
pub struct DeploymentState {
    pub deployment: Arc<Deployment>,
    pub provider: Arc<ProviderHealth>,
    in_flight: AtomicU32,
    consecutive_failures: AtomicU32,
    /// Milliseconds since the router's epoch; 0 = not cooling down.
    cooldown_until: AtomicU64,
    /// Status that caused the current cooldown (429, 503, … or 0 for repeated failures).
    cooldown_status: AtomicU16,
    /// The current cooldown was asked for by the provider (throttling, `Retry-After`): it is
    /// waited out. A cooldown after repeated failures only makes the deployment a last resort.
    throttled: AtomicBool,
    attempts: AtomicU64,
    failures: AtomicU64,
    stream_failures: AtomicU64,
}

impl DeploymentState {
    /// Takes over `old`'s passive-health state and counters (not its attempts in flight);
    /// `shift_ms` turns the old router's clock into the new one's.
    fn carry_over(&self, old: &DeploymentState, shift_ms: u64) {
        let r = Ordering::Relaxed;
        let until = old.cooldown_until.load(r);
        if until > shift_ms {
            self.cooldown_until.store(until - shift_ms, r);
            self.cooldown_status.store(old.cooldown_status.load(r), r);
            self.throttled.store(old.throttled.load(r), r);
        }
        let copy = |a: &AtomicU64, b: &AtomicU64| a.store(b.load(r), r);
        self.consecutive_failures
            .store(old.consecutive_failures.load(r), r);
        copy(&self.attempts, &old.attempts);
        copy(&self.failures, &old.failures);
        copy(&self.stream_failures, &old.stream_failures);
    }
}

/// Decrements the in-flight count when the attempt ends.
pub struct InFlight(Arc<DeploymentState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How an attempt failed, for passive health.
#[derive(Debug, Clone, Copy)]
pub struct Failure {
    /// Provider status, 0 when there was none (connect error, timeout, broken body).
    pub status: u16,
    pub retry_after: Option<Duration>,
}

/// A public model's deployments.
#[derive(Debug)]
pub struct RouteState {
    pub route: Arc<Route>,
    pub deployments: Vec<Arc<DeploymentState>>,
}

/// Why a deployment was chosen for an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Available and not yet tried for this request.
    Fresh,
    /// Every available deployment was tried: this one again, after a backoff.
    Again,
    /// Every deployment was throttled by its provider: this one's `Retry-After` ends first, in
    /// this long.
    Cooldown(Duration),
}

pub struct Router {
    routes: BTreeMap<String, Arc<RouteState>>,
    providers: BTreeMap<String, Arc<ProviderHealth>>,
    pub budget: RetryBudget,
    health: HealthSettings,
    epoch: Instant,
}

impl Router {
    pub fn new(cfg: &Config) -> Router {
        let providers: BTreeMap<String, Arc<ProviderHealth>> = cfg
            .providers
            .iter()
            .map(|(name, p)| {
                (
                    name.clone(),
                    Arc::new(ProviderHealth {
                        provider: p.clone(),
                        healthy: AtomicBool::new(true),
                        last_error: Mutex::new(None),
                    }),
                )
            })
            .collect();
        let routes = cfg
            .models
            .iter()
            .map(|(name, route)| {
                let deployments = route
                    .deployments
                    .iter()
                    .map(|d| {
                        Arc::new(DeploymentState {
                            deployment: d.clone(),
                            provider: providers[&d.provider.name].clone(),
                            in_flight: AtomicU32::new(0),
                            consecutive_failures: AtomicU32::new(0),
                            cooldown_until: AtomicU64::new(0),
                            cooldown_status: AtomicU16::new(0),
                            throttled: AtomicBool::new(false),
                            attempts: AtomicU64::new(0),
                            failures: AtomicU64::new(0),
                            stream_failures: AtomicU64::new(0),
                        })
                    })
                    .collect();
                (
                    name.clone(),
                    Arc::new(RouteState {
                        route: route.clone(),
                        deployments,
                    }),
                )
            })
            .collect();
        Router {
            routes,
            providers,
            budget: RetryBudget::new(&cfg.retry),
            health: cfg.health.clone(),
            epoch: Instant::now(),
        }
    }

    /// The router for a reloaded config, carrying over what `prev` learnt: a provider of the
    /// same name keeps its active-check health, a deployment of the same model, provider
    /// and provider model keeps its cooldown, failure streak and counters. Attempts in
    /// flight stay counted on the old router's states, which they hold.
    pub fn after(cfg: &Config, prev: &Router) -> Router {
        let router = Router::new(cfg);
        for (name, p) in &router.providers {
            if let Some(old) = prev.providers.get(name) {
                *lock(&p.last_error) = old.last_check_error();
                p.healthy.store(old.is_healthy(), Ordering::Relaxed);
            }
        }
        // Both routers count milliseconds from their own epoch.
        let shift = router
            .epoch
            .saturating_duration_since(prev.epoch)
            .as_millis() as u64;
        for (model, route) in &router.routes {
            let Some(old_route) = prev.routes.get(model) else {
                continue;
            };
            for d in &route.deployments {
                let same = |o: &&Arc<DeploymentState>| {
                    o.deployment.provider.name == d.deployment.provider.name
                        && o.deployment.model == d.deployment.model
                };
                if let Some(o) = old_route.deployments.iter().find(same) {
                    d.carry_over(o, shift);
                }
            }
        }
        router
    }

    pub fn route(&self, model: &str) -> Option<&Arc<RouteState>> {
        self.routes.get(model)
    }

    pub fn routes(&self) -> impl Iterator<Item = (&String, &Arc<RouteState>)> {
        self.routes.iter()
    }

    /// Attempts in flight on a deployment.
    pub fn in_flight(&self, d: &DeploymentState) -> u32 {
        d.in_flight.load(Ordering::Relaxed)
    }

    pub fn providers(&self) -> impl Iterator<Item = &Arc<ProviderHealth>> {
        self.providers.values()
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Time left in the deployment's cooldown (zero when it is not cooling down).
    pub fn cooldown_left(&self, d: &DeploymentState) -> Duration {
        let until = d.cooldown_until.load(Ordering::Relaxed);
        Duration::from_millis(until.saturating_sub(self.now_ms()))
    }

    /// The status that caused the deployment's current cooldown, if it had one.
    pub fn cooldown_status(&self, d: &DeploymentState) -> u16 {
        d.cooldown_status.load(Ordering::Relaxed)
    }

    /// Chooses the deployment for the next attempt. `tried` holds indexes already used by
    /// this request. In order of preference:
    ///
    /// 1. untried and available;
    /// 2. untried but failing its active checks or cooling down after repeated failures (the
    ///    signals may be stale, and trying beats failing outright);
    /// 3. tried already, not throttled: the same again, after a backoff;
    /// 4. all throttled: the one whose `Retry-After` ends first, once it ends.
    pub fn choose(&self, route: &RouteState, tried: &[usize]) -> (usize, Reason) {
        let deps = &route.deployments;
        let throttled = |i: usize| {
            deps[i].throttled.load(Ordering::Relaxed) && !self.cooldown_left(&deps[i]).is_zero()
        };
        let all: Vec<usize> = (0..deps.len()).filter(|&i| !throttled(i)).collect();
        let fresh: Vec<usize> = all.iter().copied().filter(|i| !tried.contains(i)).collect();
        let available: Vec<usize> = fresh
            .iter()
            .copied()
            .filter(|&i| self.is_available(&deps[i]))
            .collect();
        for set in [&available, &fresh] {
            if !set.is_empty() {
                return (pick(deps, set), Reason::Fresh);
            }
        }
        if !all.is_empty() {
            return (pick(deps, &all), Reason::Again);
        }
        let soonest = (0..deps.len())
            .min_by_key(|&i| self.cooldown_left(&deps[i]))
            .expect("a route has at least one deployment");
        (
            soonest,
            Reason::Cooldown(self.cooldown_left(&deps[soonest])),
        )
    }

    /// Marks the start of an attempt on `d`.
    pub fn begin(&self, d: &Arc<DeploymentState>) -> InFlight {
        d.in_flight.fetch_add(1, Ordering::Relaxed);
        d.attempts.fetch_add(1, Ordering::Relaxed);
        InFlight(d.clone())
    }

    pub fn record_success(&self, d: &DeploymentState) {
        d.consecutive_failures.store(0, Ordering::Relaxed);
    }

    /// Passive health: a failed attempt.
    pub fn record_failure(&self, d: &DeploymentState, f: Failure) {
        d.failures.fetch_add(1, Ordering::Relaxed);
        let n = d.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        let throttled = matches!(f.status, 429 | 503 | 529) || f.retry_after.is_some();
        if throttled || n >= self.health.failure_threshold {
            let length = f
                .retry_after
                .unwrap_or(self.health.cooldown)
                .min(self.health.max_cooldown);
            if !length.is_zero() {
                let until = self.now_ms() + length.as_millis() as u64;
                let previous = d.cooldown_until.fetch_max(until, Ordering::Relaxed);
                if previous < until {
                    d.cooldown_status.store(f.status, Ordering::Relaxed);
                    d.throttled.store(throttled, Ordering::Relaxed);
                }
                log::warn!(
                    "deployment {}/{} cooling down for {:?} (status {}, {} consecutive failures)",
                    d.deployment.provider.name,
                    d.deployment.model,
                    length,
                    f.status,
                    n
                );
            }
            d.consecutive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// A stream that failed after it had started.
    pub fn record_stream_failure(&self, d: &DeploymentState) {
        d.stream_failures.fetch_add(1, Ordering::Relaxed);
        self.record_failure(
            d,
            Failure {
                status: 0,
                retry_after: None,
            },
        );
    }

    /// Whether a deployment can take traffic now.
    pub fn is_available(&self, d: &DeploymentState) -> bool {
        d.provider.is_healthy() && self.cooldown_left(d).is_zero()
    }

    /// Public models with no available deployment.
    pub fn unavailable_models(&self) -> Vec<&str> {
        self.routes
            .iter()
            .filter(|(_, r)| !r.deployments.iter().any(|d| self.is_available(d)))
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// Health of every deployment and provider, for the admin listener.
    pub fn snapshot(&self) -> Value {
        let models: serde_json::Map<String, Value> = self
            .routes
            .iter()
            .map(|(name, r)| {
                let deps: Vec<Value> = r
                    .deployments
                    .iter()
                    .map(|d| {
                        json!({
                            "provider": d.deployment.provider.name,
                            "model": d.deployment.model,
                            "weight": d.deployment.weight,
                            "priority": d.deployment.priority,
                            "available": self.is_available(d),
                            "provider_healthy": d.provider.is_healthy(),
                            "cooldown_ms": self.cooldown_left(d).as_millis() as u64,
                            "throttled": d.throttled.load(Ordering::Relaxed),
                            "consecutive_failures": d.consecutive_failures.load(Ordering::Relaxed),
                            "in_flight": d.in_flight.load(Ordering::Relaxed),
                            "attempts": d.attempts.load(Ordering::Relaxed),
                            "failures": d.failures.load(Ordering::Relaxed),
                            "stream_failures": d.stream_failures.load(Ordering::Relaxed),
                        })
                    })
                    .collect();
                (name.clone(), Value::Array(deps))
            })
            .collect();
        let providers: serde_json::Map<String, Value> = self
            .providers
            .iter()
            .map(|(name, p)| {
                let err = p.last_check_error();
                (
                    name.clone(),
                    json!({"healthy": p.is_healthy(), "last_check_error": err}),
                )
            })
            .collect();
        json!({"models": models, "providers": providers, "retry_budget": self.budget.snapshot()})
    }
}

/// Power of two choices among `set`, by weight and in-flight load; lowest priority tier only.
fn pick(deps: &[Arc<DeploymentState>], set: &[usize]) -> usize {
    let tier = set
        .iter()
        .map(|&i| deps[i].deployment.priority)
        .min()
        .expect("non-empty set");
    let tier: Vec<usize> = set
        .iter()
        .copied()
        .filter(|&i| deps[i].deployment.priority == tier)
        .collect();
    if tier.len() == 1 {
        return tier[0];
    }
    let mut rng = rand::rng();
    let total: u64 = tier
        .iter()
        .map(|&i| u64::from(deps[i].deployment.weight))
        .sum();
    let mut sample = || {
        let mut n = rng.random_range(0..total);
        for &i in &tier {
            let w = u64::from(deps[i].deployment.weight);
            if n < w {
                return i;
            }
            n -= w;
        }
        tier[tier.len() - 1]
    };
    let (a, b) = (sample(), sample());
    // In-flight requests per unit of weight; with nothing in flight both are 0 and the first
    // (weighted) sample wins, so idle traffic follows the weights exactly.
    let load = |i: usize| {
        f64::from(deps[i].in_flight.load(Ordering::Relaxed)) / f64::from(deps[i].deployment.weight)
    };
    if load(b) < load(a) {
        b
    } else {
        a
    }
}

pub use crate::core::error::parse_retry_after;

/// Full-jitter exponential backoff before retry number `retry` (1 for the first retry).
pub fn backoff(retry: u32, base: Duration, max: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << retry.saturating_sub(1).min(16));
    let cap = exp.min(max);
    if cap.is_zero() {
        return cap;
    }
    Duration::from_millis(
        rand::rng().random_range(cap.as_millis() as u64 / 2..=cap.as_millis() as u64),
    )
}

#[cfg(test)]
mod tests;
