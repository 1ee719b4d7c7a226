//! Dispatch: the attempt loop. It picks a deployment for each attempt (failing over to an
//! untried one, retrying as the route's health, the retry budget and Retry-After allow),
//! renders the request for its wire once per wire and model, runs the attempt and records
//! how it ended.
//!
//! sluice drives the upstream exchange itself instead of through Pingora's `upstream_peer` /
//! `request_body_filter` phases. The route depends on `model`, which lives in the body, so the
//! body must be read in `request_filter`; Pingora then replays it upstream only from its retry
//! buffer, which holds at most 64 KiB (`BODY_BUF_LIMIT` in pingora-core 0.9): a larger body —
//! an image, a long conversation — would never be sent and the request would hang. Owning the
//! exchange also lets a stream that fails half-way end with an error event the client can see,
//! instead of a silently truncated answer. Connections come from [`crate::upstream::Dialer`]
//! (made by Pingora's transport connector, pooled and shared by sluice), and responses go out
//! through the client's [`crate::downstream::Session`].

use std::sync::Arc;
use std::time::Duration;

use super::attempt::{self, AttemptError, Deadline};
use super::exchange::{client_closed, client_gone};
use super::plan::Plan;
use super::traced;
use crate::core::ApiError;
use crate::ctx::Ctx;
use crate::downstream::Session;
use crate::pipeline::gateway::Gateway;
use crate::providers::Wire;
use crate::routing::{self, DeploymentState, Reason, Router};

/// What the loop carries from one attempt to the next.
struct Tries {
    /// Deployments tried, by index, in order.
    tried: Vec<usize>,
    /// The error of the last failed attempt.
    last: Option<ApiError>,
}

/// Sends the plan upstream and relays the answer. `Err` only while nothing was sent to the
/// client.
pub(super) async fn dispatch(
    gw: &Gateway,
    session: &mut Session<'_>,
    ctx: &mut Ctx,
    mut plan: Plan,
) -> Result<(), ApiError> {
    let router = &gw.router;
    let max_attempts = gw.cfg.retry.max_attempts;
    let deadline = Deadline::new(ctx.start + gw.cfg.timeouts.total);
    router.budget.on_request();
    let mut tries = Tries {
        tried: Vec::with_capacity(max_attempts as usize),
        last: None,
    };
    for attempt in 0..max_attempts {
        let Some(dep) = next(gw, session, ctx, &plan, &mut tries, attempt, &deadline).await? else {
            break;
        };
        let deployment = &dep.deployment;
        let wire = Wire::of(deployment.provider.kind);
        let body = match plan.body_for(wire, &deployment.model) {
            Ok(body) => body,
            // The request cannot be expressed for this deployment: try another one.
            Err(e) if tries.tried.len() < plan.route.deployments.len() => {
                tries.last = Some(e);
                continue;
            }
            Err(e) => return Err(tries.last.filter(|l| l.status >= 500).unwrap_or(e)),
        };
        ctx.attempts += 1;
        ctx.provider = Some(deployment.provider.name.clone());
        ctx.upstream_model = Some(deployment.model.clone());
        let _in_flight = router.begin(&dep);
        let before = traced::begin(ctx, deployment);
        let result = attempt::run(gw, session, ctx, &mut plan, deployment, body, &deadline).await;
        traced::end(ctx, before, &result);
        match record(gw, ctx, &dep, attempt, result) {
            None => return Ok(()),
            Some(AttemptError::Retry(e, _)) => tries.last = Some(e),
            Some(AttemptError::ClientGone) => return Err(client_closed()),
            Some(AttemptError::Final(e)) => return Err(e),
        }
    }
    Err(tries
        .last
        .unwrap_or_else(|| ApiError::internal("No attempt was made.")))
}

/// The deployment for the next attempt, after waiting out a backoff or cooldown; `None` when
/// the retry budget allows no retry.
async fn next(
    gw: &Gateway,
    session: &mut Session<'_>,
    ctx: &mut Ctx,
    plan: &Plan,
    tries: &mut Tries,
    attempt: u32,
    deadline: &Deadline,
) -> Result<Option<Arc<DeploymentState>>, ApiError> {
    let (router, retry) = (&gw.router, &gw.cfg.retry);
    let (idx, reason) = router.choose(&plan.route, &tries.tried);
    let dep = plan.route.deployments[idx].clone();
    // Failing over to an untried, available deployment adds no load where the failure was;
    // anything else — the same deployment again, a failing one, a wait — is a retry and
    // needs the budget.
    let failover = reason == Reason::Fresh && router.is_available(&dep);
    if attempt > 0 && !failover && !router.budget.try_retry() {
        gw.metrics.retry_budget_denied.inc();
        log::warn!(
            "request {}: retry budget spent, not retrying",
            ctx.request_id
        );
        return Ok(None);
    }
    let wait = match reason {
        Reason::Fresh => Duration::ZERO,
        Reason::Again => routing::backoff(attempt, retry.backoff_base, retry.backoff_max),
        Reason::Cooldown(left) => left,
    };
    if !wait.is_zero() {
        if wait > retry.max_wait || wait >= deadline.left() {
            return Err(cooling_down(router, plan, &dep, wait, tries.last.take()));
        }
        let mut watch = true;
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = client_gone(session, &mut watch) => {
                ctx.client_gone = true;
                return Err(client_closed());
            }
        }
    }
    if tries.tried.last().is_some_and(|&prev| prev != idx) {
        ctx.failovers += 1;
        gw.metrics
            .failovers
            .with_label_values(&[plan.public()])
            .inc();
    }
    tries.tried.push(idx);
    Ok(Some(dep))
}

/// Records how an attempt ended — metrics, the deployment's health — and hands a failure
/// on with the provider's credential scrubbed from its error; `None` when it answered.
fn record(
    gw: &Gateway,
    ctx: &mut Ctx,
    dep: &DeploymentState,
    attempt: u32,
    result: Result<attempt::Answered, AttemptError>,
) -> Option<AttemptError> {
    let (router, deployment) = (&gw.router, &dep.deployment);
    let outcome = |o: &str| {
        gw.metrics
            .attempts
            .with_label_values(&[&deployment.provider.name, &deployment.model, o])
            .inc();
    };
    let secret = deployment.provider.api_key.as_ref().map(|k| k.expose());
    match result {
        Ok(attempt::Answered::Complete) => {
            outcome("success");
            router.record_success(dep);
            None
        }
        Ok(attempt::Answered::StreamFailed) => {
            outcome("stream_error");
            router.record_stream_failure(dep);
            None
        }
        Err(AttemptError::ClientGone) => {
            ctx.client_gone = true;
            Some(AttemptError::ClientGone)
        }
        Err(AttemptError::Final(e)) => {
            outcome("error");
            Some(AttemptError::Final(e.from_provider(secret)))
        }
        Err(AttemptError::Retry(e, failure)) => {
            let e = e.from_provider(secret);
            outcome("retry");
            log::warn!(
                "request {}: attempt {} on {}/{} failed: {}",
                ctx.request_id,
                attempt + 1,
                deployment.provider.name,
                deployment.model,
                e.message
            );
            router.record_failure(dep, failure);
            Some(AttemptError::Retry(e, failure))
        }
    }
}

/// The error for a request that would have to wait longer than `retry.max_wait` (or its
/// deadline) for a deployment to come out of cooldown: the provider's own answer when there
/// was one, with `Retry-After` saying when to come back.
fn cooling_down(
    router: &Router,
    plan: &Plan,
    dep: &DeploymentState,
    wait: Duration,
    last: Option<ApiError>,
) -> ApiError {
    let retry_after = Some(wait.as_secs_f64().ceil().max(1.0).to_string());
    if let Some(e) = last {
        return e.with_retry_after(retry_after);
    }
    let limited = router.cooldown_status(dep) == 429;
    let (status, kind, code) = if limited {
        (429, "rate_limit_error", "rate_limit_exceeded")
    } else {
        (503, "api_error", "upstream_unavailable")
    };
    let mut e = ApiError::upstream(
        status,
        kind,
        format!(
            "The model `{}` is temporarily unavailable: its providers asked for a pause. \
             Retry after {} seconds.",
            plan.public(),
            retry_after.as_deref().unwrap_or("1")
        ),
    )
    .with_retry_after(retry_after);
    e.code = Some(code.into());
    e
}
