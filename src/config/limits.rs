//! `limits:` and `pricing:`: the size and cost bounds checked here, and the rate limits,
//! concurrency caps and spend budgets that [`crate::limits::config`] validates.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::raw::RawLimits;
use super::secrets::Ctx;
use super::units;
use super::{Config, ConfigError, ConfigErrors, Deployment, Limits, Route};
use crate::core::secret::Secret;
use crate::limits::config::{RawEngine, RawLimitSet, RawPrice};
use crate::limits::prices::default_price;
use crate::limits::{LimitsConfig, Price};
use crate::providers::ProviderKind;

/// Request-body bytes in flight at once unless `limits.max_inflight_body_bytes` says
/// otherwise (or one `max_body_bytes` if that is larger).
const DEFAULT_INFLIGHT_BODY_BYTES: usize = 1 << 30;

/// The size and cost bounds under `limits:`.
pub(super) fn validate(l: &RawLimits) -> Result<Limits, ConfigError> {
    let bytes =
        |v: &Option<units::ByteSize>, default: usize| v.as_ref().map_or(default, |b| b.0 as usize);
    let mut limits = Limits {
        max_body_bytes: bytes(&l.max_body_bytes, 8 << 20),
        max_response_bytes: bytes(&l.max_response_bytes, 64 << 20),
        max_stream_bytes: bytes(&l.max_stream_bytes, 64 << 20),
        max_inflight_body_bytes: bytes(&l.max_inflight_body_bytes, 0),
        max_completion_tokens: l.max_completion_tokens.unwrap_or(262_144),
    };
    if limits.max_body_bytes == 0 {
        return Err(ConfigError::new(
            "limits.max_body_bytes",
            "must be positive",
        ));
    }
    for (key, v) in [
        ("limits.max_response_bytes", limits.max_response_bytes),
        ("limits.max_stream_bytes", limits.max_stream_bytes),
    ] {
        if v < 1024 {
            return Err(ConfigError::new(key, "must be at least 1KiB"));
        }
    }
    if l.max_inflight_body_bytes.is_none() {
        limits.max_inflight_body_bytes = limits.max_body_bytes.max(DEFAULT_INFLIGHT_BODY_BYTES);
    }
    if limits.max_inflight_body_bytes < limits.max_body_bytes {
        return Err(ConfigError::new(
            "limits.max_inflight_body_bytes",
            "must be at least limits.max_body_bytes (one largest request must fit)",
        ));
    }
    if limits.max_completion_tokens == 0 {
        return Err(ConfigError::new(
            "limits.max_completion_tokens",
            "must be positive",
        ));
    }
    Ok(limits)
}

/// The limits engine's settings: the rest of `limits:`, `pricing:` and each key's own
/// `limits` (`keys`, in file order), for the public model names `models` (`None` when the
/// models section could not be read).
pub(super) fn rate_limits(
    ctx: &Ctx,
    l: &mut RawLimits,
    pricing: BTreeMap<String, RawPrice>,
    keys: Vec<(String, Option<RawLimitSet>)>,
    models: Option<&[String]>,
) -> Result<LimitsConfig, ConfigErrors> {
    // The URL may carry a password: `${ENV}` and `file:` are resolved like secrets, a literal
    // is accepted (a password-less URL is no secret); errors never quote it.
    let redis_url = match l.redis_url.take() {
        Some(u) => Some(
            ctx.reference("limits.redis_url", &u)?
                .unwrap_or_else(|| Secret::new(u)),
        ),
        None => None,
    };
    let engine = RawEngine {
        backend: l.backend,
        redis_url,
        redis_timeout: l.redis_timeout.map(|d| d.0),
        on_backend_error: l.on_backend_error,
        default: l.default.take(),
        models: std::mem::take(&mut l.models),
        pricing,
        keys,
    };
    crate::limits::config::validate(engine, models)
}

/// The price of a deployment's tokens when `pricing:` names none: free on Ollama (the
/// operator's own hardware), else the bundled table's price of its model.
fn deployment_price(d: &Deployment) -> Option<Price> {
    match d.provider.kind {
        ProviderKind::Ollama => Some(Price::FREE),
        _ => default_price(&d.model),
    }
}

/// Prices every public model that `pricing:` does not: the highest bundled price among its
/// deployments, so that an admission's estimate never undercounts. Models `pricing:` names
/// keep their price for every deployment.
pub(super) fn default_prices(
    rate_limits: &mut LimitsConfig,
    models: &BTreeMap<String, Arc<Route>>,
) {
    for (name, route) in models {
        if rate_limits.pricing.contains_key(name) {
            rate_limits.configured_prices.insert(name.clone());
            continue;
        }
        let highest = route
            .deployments
            .iter()
            .filter_map(|d| deployment_price(d))
            .max_by(|a, b| a.weight().total_cmp(&b.weight()));
        if let Some(p) = highest {
            rate_limits.pricing.insert(name.clone(), p);
        }
    }
}

impl Config {
    /// The price of a request's tokens, for budgets and the usage ledger alike:
    /// `pricing.<model>` when configured; else the price of the deployment that answered
    /// (`provider`, `upstream_model`); else the model's default price.
    pub fn price_of(
        &self,
        model: Option<&str>,
        provider: Option<&str>,
        upstream_model: Option<&str>,
    ) -> Option<Price> {
        let model = model?;
        let limits = &self.rate_limits;
        if !limits.configured_prices.contains(model) {
            let answered = self.models.get(model).and_then(|r| {
                r.deployments.iter().find(|d| {
                    Some(d.provider.name.as_str()) == provider
                        && Some(d.model.as_str()) == upstream_model
                })
            });
            if let Some(p) = answered.and_then(|d| deployment_price(d)) {
                return Some(p);
            }
        }
        limits.pricing.get(model).copied()
    }
}
