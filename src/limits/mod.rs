//! The limits engine: per-key and per-model rate limits, token budgets, concurrency caps and
//! spend budgets, kept in memory or in Redis.
//!
//! A request is admitted by [`Limiter::admit`], which checks every limit that applies — the
//! key's (its own `limits`, or `limits.default`) and the model's (shared by all keys) — and
//! charges all of them only if all pass, so a refused request costs nothing. Admission yields
//! a [`Permit`]; the caller settles it with the provider's reported usage when the answer is
//! complete ([`Permit::settle`]), or drops it (client gone): either way its concurrency slot
//! is released.
//!
//! * **Requests per minute** and **tokens per minute** are GCRA buckets (see `decide`): the
//!   full per-minute amount may be used at once, then it refills continuously. Admission
//!   counts are exact under any concurrency.
//! * **Tokens**: admission pre-charges `estimated_tokens` (prompt estimate + `max_tokens`);
//!   settlement corrects the charge to the actual prompt + completion tokens, refunding or
//!   charging extra. No request charges a bucket more than its limit, at admission or at
//!   settlement, so an extra charge leaves a bucket at most one window in debt (later
//!   requests wait), whatever a client asks for or a provider reports. Without usage (not
//!   reported, or the permit dropped) the estimate stays charged.
//! * **Stages**: the handler admits a key's request rate and concurrency
//!   ([`Limiter::admit_key`]) before it reads the body, so a client over them costs no body
//!   read, parse or scan; the rest ([`Limiter::admit_rest`]) once the model is known.
//! * **Concurrency**: a slot per permit, released on settle or drop. In Redis a slot is a
//!   lease renewed while the permit lives, so a crashed instance's slots expire.
//! * **Spend budgets** per UTC day and month: admission refuses once the period's spend has
//!   reached the budget; settlement charges `prompt × input + completion × output` (prices per
//!   million tokens from `pricing`; an unpriced model costs 0). Without usage the estimate is
//!   charged at the higher of the two prices, so a missing report never spends for free.
//!
//! The `redis` backend shares all of this between instances: one Lua script per admission
//! checks and charges every bucket atomically on Redis' clock. When Redis cannot be reached
//! within `redis_timeout`, `on_backend_error` decides: admit (`fail_open`, counted) or refuse
//! with `rate_limit_backend_unavailable`.

pub mod config;
mod decide;
mod memory;
pub mod metrics;
mod permit;
pub mod prices;
mod redis;
mod time;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use config::{BackendKind, LimitSet, LimitsConfig, OnBackendError, Price};
pub use permit::Permit;
pub use time::{format_reset, period_start};

use decide::Check;

/// Which kind of limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    Requests,
    Tokens,
    Concurrency,
    Budget,
    /// The Redis backend was unreachable and `on_backend_error` is `fail_closed`.
    Backend,
}

impl LimitKind {
    const ALL: [LimitKind; 5] = [
        LimitKind::Requests,
        LimitKind::Tokens,
        LimitKind::Concurrency,
        LimitKind::Budget,
        LimitKind::Backend,
    ];

    /// A label: `requests`, `tokens`, `concurrency`, `budget` or `backend`.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Requests => "requests",
            LimitKind::Tokens => "tokens",
            LimitKind::Concurrency => "concurrency",
            LimitKind::Budget => "budget",
            LimitKind::Backend => "backend",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Whose limit: the gateway key's, or the model's (shared by all keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Key,
    Model,
}

impl Scope {
    /// `key` or `model`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::Model => "model",
        }
    }
}

/// A request asking to be admitted.
#[derive(Debug, Clone, Copy)]
pub struct Admission<'a> {
    /// The gateway key's config name.
    pub key: &'a str,
    /// The public model name.
    pub model: &'a str,
    /// Prompt estimate plus `max_tokens` (or a default): pre-charged to token buckets.
    pub estimated_tokens: u64,
}

/// Token usage reported by the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Prompt tokens, cached ones included.
    pub prompt: u64,
    /// Prompt tokens served from the provider's cache.
    pub cached: u64,
    /// Billable output tokens (reasoning tokens included).
    pub completion: u64,
}

impl Usage {
    /// What a provider reported, as limits and prices count it.
    pub fn of(u: &crate::core::Usage) -> Usage {
        Usage {
            prompt: u.prompt_tokens,
            cached: u.cached_tokens,
            completion: u.billable_completion(),
        }
    }
}

/// A refused admission.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.message())]
pub struct Rejection {
    kind: LimitKind,
    scope: Option<Scope>,
    /// The key or model name (config names, never secrets).
    name: String,
    /// The limit in words, e.g. `60 requests per minute`.
    limit: String,
    retry_after: Duration,
    rate_headers: Vec<(&'static str, String)>,
}

impl Rejection {
    fn backend() -> Self {
        Rejection {
            kind: LimitKind::Backend,
            scope: None,
            name: String::new(),
            limit: String::new(),
            retry_after: Duration::from_secs(1),
            rate_headers: Vec::new(),
        }
    }

    /// Which limit refused.
    pub fn kind(&self) -> LimitKind {
        self.kind
    }

    /// Whose limit refused; `None` for [`LimitKind::Backend`].
    pub fn scope(&self) -> Option<Scope> {
        self.scope
    }

    /// How long until the request could pass: the time for the bucket to drain enough, or
    /// until the next UTC day or month for a spent budget.
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }

    /// The OpenAI-style error code: `rate_limit_exceeded`, `budget_exceeded` or
    /// `rate_limit_backend_unavailable`.
    pub fn code(&self) -> &'static str {
        match self.kind {
            LimitKind::Budget => "budget_exceeded",
            LimitKind::Backend => "rate_limit_backend_unavailable",
            _ => "rate_limit_exceeded",
        }
    }

    /// The HTTP status to answer with: 429, or 503 when the backend was unavailable.
    pub fn status(&self) -> u16 {
        match self.kind {
            LimitKind::Backend => 503,
            _ => 429,
        }
    }

    /// A message for the client naming the limit.
    pub fn message(&self) -> String {
        let retry = format_reset(self.retry_after);
        match (self.kind, self.scope) {
            (LimitKind::Backend, _) | (_, None) => {
                format!("Rate limiting is temporarily unavailable. Please retry after {retry}.")
            }
            (LimitKind::Budget, Some(scope)) => format!(
                "Budget exceeded for {} {}: the {} is spent. Please retry after {retry}.",
                scope.as_str(),
                self.name,
                self.limit
            ),
            (_, Some(scope)) => format!(
                "Rate limit reached for {} {}: {}. Please retry after {retry}.",
                scope.as_str(),
                self.name,
                self.limit
            ),
        }
    }

    /// Headers for the refusal: `retry-after` (whole seconds, rounded up) and the
    /// `x-ratelimit-*` headers.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, String)> + '_ {
        let secs = self.retry_after.as_millis().div_ceil(1000).max(1);
        std::iter::once(("retry-after", secs.to_string())).chain(self.rate_headers.iter().cloned())
    }
}

/// Counters for metrics. Labels come only from [`LimitKind`] and [`Scope`].
#[derive(Debug, Default)]
pub struct LimitCounters {
    /// [kind][scope: key, model, none]
    rejections: [[AtomicU64; 3]; 5],
    backend_errors: AtomicU64,
    fail_open_admits: AtomicU64,
}

impl LimitCounters {
    fn count_rejection(&self, r: &Rejection) {
        let s = match r.scope {
            Some(Scope::Key) => 0,
            Some(Scope::Model) => 1,
            None => 2,
        };
        self.rejections[r.kind.index()][s].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests refused by `kind` limits of `scope` (`None`: backend unavailable).
    pub fn rejections(&self, kind: LimitKind, scope: Option<Scope>) -> u64 {
        let s = match scope {
            Some(Scope::Key) => 0,
            Some(Scope::Model) => 1,
            None => 2,
        };
        self.rejections[kind.index()][s].load(Ordering::Relaxed)
    }

    /// Every (kind, scope, count) with a non-zero count.
    pub fn all_rejections(&self) -> Vec<(LimitKind, Option<Scope>, u64)> {
        let mut out = Vec::new();
        for kind in LimitKind::ALL {
            for scope in [Some(Scope::Key), Some(Scope::Model), None] {
                let n = self.rejections(kind, scope);
                if n > 0 {
                    out.push((kind, scope, n));
                }
            }
        }
        out
    }

    /// Failed or timed-out backend operations (admissions, settlements, lease renewals).
    pub fn backend_errors(&self) -> u64 {
        self.backend_errors.load(Ordering::Relaxed)
    }

    /// Requests admitted unlimited because the backend failed under `fail_open`.
    pub fn fail_open_admits(&self) -> u64 {
        self.fail_open_admits.load(Ordering::Relaxed)
    }
}

/// The scope limits that apply to one admission.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub scope: Scope,
    pub name: &'a str,
    pub set: &'a LimitSet,
}

enum Backend {
    Memory(memory::MemoryBackend),
    Redis(Arc<redis::RedisBackend>),
}

/// Whether two configurations reach Redis the same way (one backend serves both).
fn same_redis(a: &LimitsConfig, b: &LimitsConfig) -> bool {
    let url = |c: &LimitsConfig| c.redis_url.as_ref().map(|u| u.expose().to_owned());
    url(a) == url(b)
        && a.redis_timeout == b.redis_timeout
        && a.on_backend_error == b.on_backend_error
}

struct Inner {
    cfg: LimitsConfig,
    /// Each key's limits split by [`Stage`]: request rate and concurrency (checked before
    /// the body is read) and the rest (tokens, budgets).
    early: std::collections::BTreeMap<String, LimitSet>,
    late: std::collections::BTreeMap<String, LimitSet>,
    active: bool,
    backend: Backend,
    counters: Arc<LimitCounters>,
}

/// The limits engine, built once from the config and shared (it is cheap to clone).
#[derive(Clone)]
pub struct Limiter {
    inner: Arc<Inner>,
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("backend", &self.inner.cfg.backend)
            .field("active", &self.inner.active)
            .finish()
    }
}

/// The limiter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum LimiterError {
    /// The Redis URL was refused by the client library (its value is not shown).
    #[error("limits.redis_url: not a usable Redis URL")]
    RedisUrl,
}

impl Limiter {
    /// Builds the limiter. Every configured key and model gets its state now, so admissions
    /// never take a lock other than their own key's and model's. A Redis backend connects
    /// lazily on first use (and reconnects by itself).
    pub fn new(cfg: &LimitsConfig) -> Result<Limiter, LimiterError> {
        Self::with_clock(cfg, time::Clock::system())
    }

    pub(crate) fn with_clock(
        cfg: &LimitsConfig,
        clock: time::Clock,
    ) -> Result<Limiter, LimiterError> {
        let counters = Arc::new(LimitCounters::default());
        let backend =
            match (cfg.backend, &cfg.redis_url) {
                (BackendKind::Redis, Some(url)) => Backend::Redis(Arc::new(
                    redis::RedisBackend::new(cfg, url, counters.clone())?,
                )),
                (BackendKind::Redis, None) => return Err(LimiterError::RedisUrl),
                (BackendKind::Memory, _) => Backend::Memory(memory::MemoryBackend::new(cfg, clock)),
            };
        Ok(Self::assemble(cfg, backend, counters))
    }

    /// The limiter for a new configuration (a config reload, managed keys changed): keys and
    /// models that stay keep their state, requests admitted under the old configuration
    /// settle into it, and the counters go on. A different backend (kind, Redis URL or
    /// timeout) starts a new one.
    pub fn reconfigured(&self, cfg: &LimitsConfig) -> Result<Limiter, LimiterError> {
        let old = &self.inner;
        let backend = match (&old.backend, cfg.backend) {
            (Backend::Memory(m), BackendKind::Memory) => Backend::Memory(m.reconfigured(cfg)),
            (Backend::Redis(r), BackendKind::Redis) if same_redis(&old.cfg, cfg) => {
                Backend::Redis(r.clone())
            }
            (_, BackendKind::Redis) => {
                let url = cfg.redis_url.as_ref().ok_or(LimiterError::RedisUrl)?;
                Backend::Redis(Arc::new(redis::RedisBackend::new(
                    cfg,
                    url,
                    old.counters.clone(),
                )?))
            }
            (_, BackendKind::Memory) => {
                Backend::Memory(memory::MemoryBackend::new(cfg, time::Clock::system()))
            }
        };
        Ok(Self::assemble(cfg, backend, old.counters.clone()))
    }

    fn assemble(cfg: &LimitsConfig, backend: Backend, counters: Arc<LimitCounters>) -> Limiter {
        let split = |f: fn(&LimitSet) -> LimitSet| {
            cfg.keys
                .iter()
                .map(|(name, set)| (name.clone(), f(set)))
                .collect()
        };
        Limiter {
            inner: Arc::new(Inner {
                cfg: cfg.clone(),
                early: split(|s| LimitSet {
                    requests_per_minute: s.requests_per_minute,
                    max_concurrent: s.max_concurrent,
                    ..LimitSet::default()
                }),
                late: split(|s| LimitSet {
                    requests_per_minute: None,
                    max_concurrent: None,
                    ..s.clone()
                }),
                active: cfg.is_active(),
                backend,
                counters,
            }),
        }
    }

    /// False when nothing is limited: callers may skip the limiter entirely.
    pub fn is_active(&self) -> bool {
        self.inner.active
    }

    /// Rejection and backend-error counters.
    pub fn counters(&self) -> &LimitCounters {
        &self.inner.counters
    }

    /// A Prometheus collector of [`Limiter::counters`], to register in the metrics registry.
    pub fn collector(&self) -> metrics::LimitsCollector {
        metrics::LimitsCollector::new(self.inner.counters.clone())
    }

    /// Checks every limit that applies to the request and, if all pass, charges them all.
    /// An unknown key or model name has no limits of its own.
    pub async fn admit(&self, req: &Admission<'_>) -> Result<Permit, Rejection> {
        let mut permit = self.permit(req);
        self.admit_stage(Stage::All, req, &mut permit).await?;
        Ok(permit)
    }

    /// The first stage of a request's admission, before its body is read or parsed: the
    /// key's request rate and concurrency. A client over its rate or concurrency then costs
    /// no more than its headers.
    pub async fn admit_key(&self, key: &str) -> Result<Permit, Rejection> {
        let req = Admission {
            key,
            model: "",
            estimated_tokens: 0,
        };
        let mut permit = self.permit(&req);
        self.admit_stage(Stage::Early, &req, &mut permit).await?;
        Ok(permit)
    }

    /// The second stage, once the model and the estimate are known: the key's token and
    /// spend limits and every limit of the model, added to `permit`. On a refusal `permit`
    /// keeps only what the first stage charged (dropping it releases the slot; the request
    /// stays counted).
    pub async fn admit_rest(
        &self,
        req: &Admission<'_>,
        permit: &mut Permit,
    ) -> Result<(), Rejection> {
        permit.set_estimate(
            req.estimated_tokens,
            self.inner.cfg.pricing.get(req.model).copied(),
        );
        self.admit_stage(Stage::Late, req, permit).await
    }

    fn permit(&self, req: &Admission<'_>) -> Permit {
        Permit::new(
            self.inner.clone(),
            req.estimated_tokens,
            self.inner.cfg.pricing.get(req.model).copied(),
        )
    }

    /// The limits `stage` checks for `req`: the key's (those of the stage) and, except in
    /// the early stage, the model's; a scope without limits is left out.
    fn targets<'a>(&'a self, stage: Stage, req: &Admission<'a>) -> Vec<Target<'a>> {
        let inner = &self.inner;
        let key_sets = match stage {
            Stage::All => &inner.cfg.keys,
            Stage::Early => &inner.early,
            Stage::Late => &inner.late,
        };
        let mut targets = [None, None];
        if let Some(set) = key_sets.get(req.key).filter(|s| !s.is_empty()) {
            targets[0] = Some(Target {
                scope: Scope::Key,
                name: req.key,
                set,
            });
        }
        if stage != Stage::Early {
            if let Some(set) = inner.cfg.models.get(req.model).filter(|s| !s.is_empty()) {
                targets[1] = Some(Target {
                    scope: Scope::Model,
                    name: req.model,
                    set,
                });
            }
        }
        targets.into_iter().flatten().collect()
    }

    async fn admit_stage(
        &self,
        stage: Stage,
        req: &Admission<'_>,
        permit: &mut Permit,
    ) -> Result<(), Rejection> {
        let inner = &self.inner;
        let targets = self.targets(stage, req);
        if targets.is_empty() {
            return Ok(());
        }
        let outcome = match &inner.backend {
            Backend::Memory(m) => Ok(m.admit(&targets, req.estimated_tokens)),
            Backend::Redis(r) => r.admit(&targets, req.estimated_tokens).await,
        };
        let result = match outcome {
            Ok(Decision::Admit(grant, checks)) => {
                permit.charged(grant, decide::rate_views(&checks, true, inner.cfg.window));
                Ok(())
            }
            Ok(Decision::Refuse(checks, unix_secs)) => {
                Err(decide::rejection(&checks, inner.cfg.window, unix_secs))
            }
            Err(BackendDown) => match inner.cfg.on_backend_error {
                OnBackendError::FailOpen => {
                    inner
                        .counters
                        .fail_open_admits
                        .fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                OnBackendError::FailClosed => Err(Rejection::backend()),
            },
        };
        if let Err(r) = &result {
            inner.counters.count_rejection(r);
        }
        result
    }
}

/// Which limits one admission call checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Everything: the key's and the model's limits.
    All,
    /// The key's request rate and concurrency.
    Early,
    /// The key's token and spend limits, and the model's limits.
    Late,
}

/// A backend's answer: admitted (with what to settle later) or refused, with the checks and,
/// for a refusal, the Unix time (seconds) it was decided at.
pub(crate) enum Decision<'a> {
    Admit(Grant, Vec<Check<'a>>),
    Refuse(Vec<Check<'a>>, u64),
}

/// The backend could not be reached in time.
#[derive(Debug)]
pub(crate) struct BackendDown;

/// What an admission charged and must settle.
pub(crate) enum Grant {
    Memory(memory::MemoryGrant),
    Redis(redis::RedisGrant),
}

#[cfg(test)]
mod tests;
