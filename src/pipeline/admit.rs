//! Admission: the key's request rate and concurrency before the body is read ([`key`]),
//! then its tokens and budgets and the model's limits once the request is known ([`rest`]).
//! The permit is settled after the answer (see `settle`).

use serde_json::Value;

use super::decode::{Members, Request};
use crate::core::ApiError;
use crate::ctx::Ctx;
use crate::downstream::Session;
use crate::front::{Endpoint, FrontDoor};
use crate::limits::{Admission, Permit, Rejection};
use crate::pipeline::gateway::Gateway;
use crate::pipeline::keyring::Key;

/// Admits the key's request rate and concurrency; `None` when no limits are configured or
/// the request is not metered.
pub(super) async fn key(
    gw: &Gateway,
    session: &mut Session<'_>,
    ctx: &mut Ctx,
    key: &Key,
    endpoint: Endpoint,
) -> Result<Option<Permit>, ApiError> {
    if !gw.limiter.is_active() || endpoint.passthrough_only() {
        return Ok(None);
    }
    match gw.limiter.admit_key(&key.name).await {
        Ok(p) => Ok(Some(p)),
        Err(r) => {
            session.close_after();
            Err(rejected(&r, ctx))
        }
    }
}

/// Admits the request's estimated tokens against the key's and the model's limits; the
/// estimate, which settlement corrects.
pub(super) async fn rest(
    gw: &Gateway,
    ctx: &mut Ctx,
    key: &Key,
    req: &Request,
    permit: Option<&mut Permit>,
) -> Result<u64, ApiError> {
    let ceiling = gw.cfg.limits.max_completion_tokens;
    let estimate = estimate_tokens(ctx.front.door(), req.members(), req.size, ceiling)?;
    if let Some(p) = permit {
        let admission = Admission {
            key: &key.name,
            model: &req.route.route.name,
            estimated_tokens: estimate,
        };
        if let Err(r) = gw.limiter.admit_rest(&admission, p).await {
            return Err(rejected(&r, ctx));
        }
        ctx.extra_headers.extend(p.headers());
    }
    Ok(estimate)
}

/// Tokens charged at admission: the request's size in bytes / 4 (a rough tokens-per-byte
/// ratio for prompts) plus the completion it may produce (`max_completion_tokens` /
/// `max_tokens`, else [`DEFAULT_COMPLETION_ESTIMATE`], times `n`). Settlement corrects the
/// charge. A maximum that is not a whole number from 0 to `ceiling`
/// (`limits.max_completion_tokens`) is refused: no request can name a cost that would
/// exhaust a budget or a token bucket by itself.
fn estimate_tokens(
    door: &dyn FrontDoor,
    body: &dyn Members,
    body_len: usize,
    ceiling: u64,
) -> Result<u64, ApiError> {
    // The parameter as the client named it, for the error.
    let client_param = |chat: &'static str| door.param_name(chat);
    let mut completion = None;
    for name in ["max_completion_tokens", "max_tokens"] {
        let v = match body.member(name) {
            None | Some(Value::Null) => continue,
            Some(v) => v,
        };
        let param = client_param(name);
        let n = v
            .as_u64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64) // saturating
            })
            .ok_or_else(|| {
                ApiError::invalid_param(param, format!("'{param}' must be a non-negative integer."))
            })?;
        if n > ceiling {
            return Err(ApiError::invalid_param(
                param,
                format!("'{param}' is {n}, above this gateway's maximum of {ceiling} tokens per request."),
            ));
        }
        completion = Some(completion.map_or(n, |c: u64| c.max(n)));
    }
    let choices = body
        .member("n")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .clamp(1, MAX_CHOICES);
    let completion = completion
        .unwrap_or(DEFAULT_COMPLETION_ESTIMATE)
        .saturating_mul(choices);
    Ok((body_len as u64 / 4).saturating_add(completion))
}

/// The largest `n` that counts in an estimate (OpenAI's own maximum).
const MAX_CHOICES: u64 = 128;

/// The completion tokens assumed at admission when a request sets no maximum.
const DEFAULT_COMPLETION_ESTIMATE: u64 = 256;

/// A refused admission as the client's error, with `Retry-After` and the rate-limit headers.
fn rejected(r: &Rejection, ctx: &mut Ctx) -> ApiError {
    ctx.limit = Some(match r.scope() {
        Some(scope) => format!("{}:{}", scope.as_str(), r.kind().as_str()),
        None => r.kind().as_str().to_string(),
    });
    let mut retry_after = None;
    for (name, value) in r.headers() {
        if name == "retry-after" {
            retry_after = Some(value);
        } else {
            ctx.extra_headers.push((name, value));
        }
    }
    ApiError::limited(r.status(), r.code(), r.message()).with_retry_after(retry_after)
}
