//! The `limits:`, `pricing:` and `keys[].limits` config sections: their serde shape and their
//! validation into a [`LimitsConfig`].
//!
//! ```yaml
//! limits:
//!   backend: redis                 # memory (default) | redis
//!   redis_url: ${REDIS_URL}        # redis:// or rediss://; required for redis
//!   redis_timeout: 50ms            # per Redis operation
//!   on_backend_error: fail_open    # fail_open (default) | fail_closed
//!   default: { requests_per_minute: 600, tokens_per_minute: 200000, max_concurrent: 50,
//!              budget: { daily_usd: 50, monthly_usd: 1000 } }
//!   models:
//!     gpt-4o-mini: { requests_per_minute: 5000, max_concurrent: 500 }
//! pricing:
//!   gpt-4o-mini: { input: 0.15, output: 0.60 }   # USD per million tokens
//! keys:
//!   - { name: team-a, key: ${TEAM_A_KEY}, limits: { requests_per_minute: 60 } }
//! ```
//!
//! `limits.default` applies to every key that has no `limits` of its own; a key's own `limits`
//! replace the default as a whole (`limits: {}` exempts a key). Model limits are shared by all
//! keys and apply on top of the key's. A model without `pricing` costs nothing, so spend
//! budgets do not count it; [`LimitsConfig::unpriced_models`] lists those models so that the
//! program can warn about them at startup.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::core::secret::Secret;
use crate::core::{ConfigError, ConfigErrors, ErrorCollector};

/// One set of limits, as written under `limits.default`, `limits.models.<name>` or
/// `keys[i].limits`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimitSet {
    #[serde(default)]
    pub requests_per_minute: Option<u64>,
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
    #[serde(default)]
    pub max_concurrent: Option<u64>,
    #[serde(default)]
    pub budget: Option<RawBudget>,
}

/// `budget: { daily_usd, monthly_usd }`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    #[serde(default)]
    pub daily_usd: Option<f64>,
    #[serde(default)]
    pub monthly_usd: Option<f64>,
}

/// `pricing.<model>: { input, output, cached_input }` in USD per million tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    pub input: f64,
    pub output: f64,
    #[serde(default)]
    pub cached_input: Option<f64>,
}

/// Where limit state lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// In this process: exact and fast, but each sluice instance counts on its own.
    Memory,
    /// In Redis: shared by every instance that uses the same server.
    Redis,
}

/// What happens to a request when the Redis backend cannot be reached in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnBackendError {
    /// Admit the request unlimited (and count it).
    FailOpen,
    /// Refuse the request with `rate_limit_backend_unavailable`.
    FailClosed,
}

/// The raw engine settings under `limits:` (besides the body-size keys), gathered by
/// `config::parse` with `redis_url` already resolved from `${ENV}` or `file:` (or a
/// placeholder when references are not read).
#[derive(Debug, Default)]
pub struct RawEngine {
    pub backend: Option<BackendKind>,
    pub redis_url: Option<Secret>,
    pub redis_timeout: Option<Duration>,
    pub on_backend_error: Option<OnBackendError>,
    pub default: Option<RawLimitSet>,
    pub models: BTreeMap<String, RawLimitSet>,
    pub pricing: BTreeMap<String, RawPrice>,
    /// Every configured key in file order: its name and its own `limits`, if any.
    pub keys: Vec<(String, Option<RawLimitSet>)>,
}

/// Validated limits of one scope (a key or a model). Every number is positive.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LimitSet {
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    pub max_concurrent: Option<u64>,
    pub daily_usd: Option<f64>,
    pub monthly_usd: Option<f64>,
}

impl LimitSet {
    /// Whether this set limits anything.
    pub fn is_empty(&self) -> bool {
        *self == LimitSet::default()
    }

    /// Whether it has a spend budget.
    pub fn has_budget(&self) -> bool {
        self.daily_usd.is_some() || self.monthly_usd.is_some()
    }
}

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// Prompt tokens served from the provider's cache (`input` when not given).
    pub cached_input: Option<f64>,
}

impl Price {
    /// Free: a model served on the operator's own hardware (Ollama).
    pub const FREE: Price = Price {
        input: 0.0,
        output: 0.0,
        cached_input: None,
    };

    /// The cost in USD of `u`. The one formula budgets and the usage ledger use.
    pub fn cost(&self, u: &super::Usage) -> f64 {
        let cached = u.cached.min(u.prompt);
        ((u.prompt - cached) as f64 * self.input
            + cached as f64 * self.cached_input.unwrap_or(self.input)
            + u.completion as f64 * self.output)
            / 1e6
    }

    /// Input plus output price, to compare prices.
    pub(crate) fn weight(&self) -> f64 {
        self.input + self.output
    }
}

/// The validated limits configuration.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    pub backend: BackendKind,
    /// Set exactly when `backend` is Redis. Never printed.
    pub redis_url: Option<Secret>,
    pub redis_timeout: Duration,
    pub on_backend_error: OnBackendError,
    /// Effective limits of every configured key: its own, or the default.
    pub keys: BTreeMap<String, LimitSet>,
    /// `limits.default`: the limits of a key without its own (managed keys too).
    pub default: LimitSet,
    /// Limits per public model name, shared by all keys.
    pub models: BTreeMap<String, LimitSet>,
    /// Prices per public model name: `pricing:`, else the bundled table's
    /// ([`crate::limits::prices`]).
    pub pricing: BTreeMap<String, Price>,
    /// The models `pricing:` prices (the others have the table's price, per deployment).
    pub configured_prices: std::collections::BTreeSet<String>,
    /// The rate window: one minute. Tests shorten or lengthen it.
    pub(crate) window: Duration,
    /// How long a Redis concurrency slot outlives its last renewal (a crashed instance's
    /// slots free themselves after this).
    pub(crate) lease: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            backend: BackendKind::Memory,
            redis_url: None,
            redis_timeout: DEFAULT_REDIS_TIMEOUT,
            on_backend_error: OnBackendError::FailOpen,
            keys: BTreeMap::new(),
            default: LimitSet::default(),
            models: BTreeMap::new(),
            pricing: BTreeMap::new(),
            configured_prices: Default::default(),
            window: Duration::from_secs(60),
            lease: Duration::from_secs(30),
        }
    }
}

impl LimitsConfig {
    /// Whether anything is limited; when not, callers skip the limiter entirely.
    pub fn is_active(&self) -> bool {
        self.keys
            .values()
            .chain(self.models.values())
            .any(|s| !s.is_empty())
    }

    /// Models with no price at all (neither `pricing:` nor the bundled table knows one of
    /// their deployments' models): they cost 0 in budgets and the usage ledger.
    pub fn without_price<'a>(&'a self, models: &'a [String]) -> Vec<&'a str> {
        models
            .iter()
            .filter(|m| !self.pricing.contains_key(*m))
            .map(String::as_str)
            .collect()
    }

    /// Models that have no price although some budget is configured: their requests cost 0
    /// and never use up a budget.
    pub fn unpriced_models<'a>(&'a self, models: &'a [String]) -> Vec<&'a str> {
        let budgets = self
            .keys
            .values()
            .chain(self.models.values())
            .any(LimitSet::has_budget);
        if !budgets {
            return Vec::new();
        }
        models
            .iter()
            .filter(|m| !self.pricing.contains_key(*m))
            .map(String::as_str)
            .collect()
    }
}

const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(50);

fn err(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.into(),
        message: message.into(),
    }
}

/// Validates one limit set; `path` is where it sits, e.g. `keys[0].limits`.
pub fn validate_set(path: &str, raw: &RawLimitSet) -> Result<LimitSet, ConfigError> {
    for (name, v) in [
        ("requests_per_minute", raw.requests_per_minute),
        ("tokens_per_minute", raw.tokens_per_minute),
        ("max_concurrent", raw.max_concurrent),
    ] {
        if v == Some(0) {
            return Err(err(format!("{path}.{name}"), "must be positive"));
        }
    }
    let (mut daily_usd, mut monthly_usd) = (None, None);
    if let Some(b) = &raw.budget {
        if b.daily_usd.is_none() && b.monthly_usd.is_none() {
            return Err(err(
                format!("{path}.budget"),
                "needs daily_usd or monthly_usd",
            ));
        }
        for (name, v, out) in [
            ("daily_usd", b.daily_usd, &mut daily_usd),
            ("monthly_usd", b.monthly_usd, &mut monthly_usd),
        ] {
            if let Some(v) = v {
                if !v.is_finite() || v <= 0.0 {
                    return Err(err(
                        format!("{path}.budget.{name}"),
                        "must be a positive number of US dollars",
                    ));
                }
                *out = Some(v);
            }
        }
    }
    Ok(LimitSet {
        requests_per_minute: raw.requests_per_minute,
        tokens_per_minute: raw.tokens_per_minute,
        max_concurrent: raw.max_concurrent,
        daily_usd,
        monthly_usd,
    })
}

/// Checks a Redis URL without ever quoting it (it may carry a password).
fn validate_redis_url(url: &str) -> Result<(), ConfigError> {
    const PATH: &str = "limits.redis_url";
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(err(PATH, "must start with redis:// or rediss://"));
    }
    redis::Client::open(url)
        .map(drop)
        .map_err(|_| err(PATH, "is not a valid Redis URL (its value is not shown)"))
}

/// Validates the engine settings; every error is reported. `models` are the public model
/// names of the config: limits and prices may only name those (not checked when `None`, the
/// models section being unreadable).
pub fn validate(raw: RawEngine, models: Option<&[String]>) -> Result<LimitsConfig, ConfigErrors> {
    let mut errors = ErrorCollector::new();
    let backend = raw.backend.unwrap_or(BackendKind::Memory);
    let redis_url = errors.take(redis_url(backend, raw.redis_url));
    let redis_timeout = raw.redis_timeout.unwrap_or(DEFAULT_REDIS_TIMEOUT);
    if redis_timeout.is_zero() {
        errors.push(err("limits.redis_timeout", "must be positive"));
    }
    let default = errors
        .take(
            raw.default
                .as_ref()
                .map(|d| validate_set("limits.default", d))
                .transpose(),
        )
        .flatten()
        .unwrap_or_default();
    let model_limits = model_limits(&raw.models, models, &mut errors);
    let pricing = pricing(raw.pricing, models, &mut errors);
    let keys = key_limits(raw.keys, &default, &mut errors);
    errors.finish(LimitsConfig {
        default,
        backend,
        redis_url: redis_url.flatten(),
        redis_timeout,
        on_backend_error: raw.on_backend_error.unwrap_or(OnBackendError::FailOpen),
        keys,
        models: model_limits,
        pricing,
        ..LimitsConfig::default()
    })
}

/// `limits.redis_url`: required by the Redis backend, refused by the memory one.
fn redis_url(backend: BackendKind, url: Option<Secret>) -> Result<Option<Secret>, ConfigError> {
    match (backend, url) {
        (BackendKind::Redis, Some(url)) => {
            if !url.is_placeholder() {
                validate_redis_url(url.expose())?;
            }
            Ok(Some(url))
        }
        (BackendKind::Redis, None) => Err(err(
            "limits.redis_url",
            "is required when limits.backend is redis",
        )),
        (BackendKind::Memory, Some(_)) => Err(err(
            "limits.redis_url",
            "is only used with limits.backend: redis",
        )),
        (BackendKind::Memory, None) => Ok(None),
    }
}

/// Refuses a model name at `path` that is not one of the public `models` (when known).
fn check_known(path: String, name: &str, models: Option<&[String]>) -> Result<String, ConfigError> {
    if models.is_some_and(|models| !models.iter().any(|k| k == name)) {
        return Err(err(
            path,
            format!("unknown model {name:?} (not under models)"),
        ));
    }
    Ok(path)
}

/// `limits.models.<name>`: limits of known models.
fn model_limits(
    raw: &BTreeMap<String, RawLimitSet>,
    models: Option<&[String]>,
    errors: &mut ErrorCollector,
) -> BTreeMap<String, LimitSet> {
    let mut model_limits = BTreeMap::new();
    for (name, set) in raw {
        let set = check_known(format!("limits.models.{name}"), name, models)
            .and_then(|path| validate_set(&path, set));
        if let Some(set) = errors.take(set) {
            model_limits.insert(name.clone(), set);
        }
    }
    model_limits
}

/// `pricing.<name>`: prices of known models, never negative.
fn pricing(
    raw: BTreeMap<String, RawPrice>,
    models: Option<&[String]>,
    errors: &mut ErrorCollector,
) -> BTreeMap<String, Price> {
    let mut pricing = BTreeMap::new();
    for (name, p) in raw {
        if let Some(price) = errors.take(price(&name, p, models)) {
            pricing.insert(name, price);
        }
    }
    pricing
}

/// `pricing.<name>`.
fn price(name: &str, p: RawPrice, models: Option<&[String]>) -> Result<Price, ConfigError> {
    let path = check_known(format!("pricing.{name}"), name, models)?;
    for (field, v) in [
        ("input", p.input),
        ("output", p.output),
        ("cached_input", p.cached_input.unwrap_or(0.0)),
    ] {
        if !v.is_finite() || v < 0.0 {
            return Err(err(
                format!("{path}.{field}"),
                "must be a number of US dollars per million tokens, 0 or more",
            ));
        }
    }
    Ok(Price {
        input: p.input,
        output: p.output,
        cached_input: p.cached_input,
    })
}

/// Every key's effective limits: its own `keys[i].limits`, or `default`.
fn key_limits(
    keys: Vec<(String, Option<RawLimitSet>)>,
    default: &LimitSet,
    errors: &mut ErrorCollector,
) -> BTreeMap<String, LimitSet> {
    let mut out = BTreeMap::new();
    for (i, (name, own)) in keys.into_iter().enumerate() {
        let set = match own {
            Some(own) => errors.take(validate_set(&format!("keys[{i}].limits"), &own)),
            None => Some(default.clone()),
        };
        if let Some(set) = set {
            out.insert(name, set);
        }
    }
    out
}
