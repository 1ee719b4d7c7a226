//! One attempt on one deployment: resolve, connect (pooled), send, read the response header,
//! and hand the answer to the relay — or classify the failure as final or worth another
//! attempt ([`AttemptError`]).

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::exchange::{exchange_headers, read_whole, release, MAX_ERROR_BODY};
use super::plan::Plan;
use super::relay;
use super::traced;
use crate::config::Deployment;
use crate::core::{fields, ApiError};
use crate::ctx::Ctx;
use crate::downstream::Session;
use crate::pipeline::gateway::Gateway;
use crate::providers::Wire;
use crate::routing::{self, Failure};
use crate::upstream;

/// How an attempt that reached the client ended.
pub(super) enum Answered {
    /// The whole answer was sent (or the client left while it was).
    Complete,
    /// A stream started and then failed; the client got an error event.
    StreamFailed,
}

/// An attempt that sent nothing to the client.
pub(super) enum AttemptError {
    /// The client went away; its answer would never be seen.
    ClientGone,
    /// The error goes to the client as it is.
    Final(ApiError),
    /// Another attempt (another deployment, or later) may succeed.
    Retry(ApiError, Failure),
}

impl AttemptError {
    /// A failure before the provider answered, or of its answer: another attempt may
    /// succeed — unless it is a 500, sluice's own failure or the provider's reported one.
    pub fn failed(e: ApiError) -> Self {
        if e.status == 500 {
            return AttemptError::Final(e);
        }
        AttemptError::Retry(
            e,
            Failure {
                status: 0,
                retry_after: None,
            },
        )
    }

    /// The provider answered with an error status.
    fn status(e: ApiError, status: u16, retry_after: Option<Duration>) -> Self {
        if retryable_status(status) {
            AttemptError::Retry(
                e,
                Failure {
                    status,
                    retry_after,
                },
            )
        } else {
            AttemptError::Final(e)
        }
    }
}

/// Statuses worth another attempt; every other error goes straight back.
fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504 | 529)
}

/// The request's total time limit.
pub(super) struct Deadline {
    end: Instant,
}

impl Deadline {
    pub fn new(end: Instant) -> Self {
        Deadline { end }
    }

    /// When the request's time is up.
    pub fn end(&self) -> Instant {
        self.end
    }

    pub fn left(&self) -> Duration {
        self.end.saturating_duration_since(Instant::now())
    }

    /// The shorter of `phase` and what is left of the whole request's time.
    pub fn cap(&self, phase: Duration) -> (Duration, &'static str) {
        let left = self.left();
        if left < phase {
            (left, "total")
        } else {
            (phase, "")
        }
    }
}

pub(super) async fn run(
    gw: &Gateway,
    session: &mut Session<'_>,
    ctx: &mut Ctx,
    plan: &mut Plan,
    deployment: &Deployment,
    body: Bytes,
    deadline: &Deadline,
) -> Result<Answered, AttemptError> {
    let provider = &deployment.provider;
    let addr = gw.resolver.resolve(provider).await.map_err(|m| {
        AttemptError::failed(
            ApiError::bad_gateway(format!(
                "Could not reach the upstream provider '{}': {m}.",
                provider.name
            ))
            .with_code("upstream_unreachable"),
        )
    })?;
    let peer = upstream::peer(provider, addr, &gw.cfg);
    let wire = Wire::of(provider.kind);
    let tail = plan.path(wire, &deployment.model);
    let mut path = String::with_capacity(provider.api_root.len() + tail.len());
    path.push_str(&provider.api_root);
    path.push_str(&tail);
    let mut req = upstream::Outgoing::new(
        provider,
        "POST",
        path,
        Some(body.len()),
        plan.stream,
        &ctx.request_id,
    )
    .map_err(AttemptError::Final)?;
    traced::propagate(ctx, &mut req);
    let mut up = exchange_headers(gw, session, &peer, provider, &req, &body, deadline).await?;
    // Sent: this attempt no longer needs them (the plan keeps the body for another attempt),
    // and a stream would hold them to its end.
    drop((body, req));
    let Some(status) = up.status() else {
        return Err(AttemptError::Final(ApiError::internal(
            "The upstream response header is missing.",
        )));
    };
    ctx.upstream_status = Some(status);
    let header_str = |name: &str| up.header(name).and_then(fields::text).map(str::to_string);
    let retry_after = header_str("retry-after");
    let is_stream = header_str("content-type").is_some_and(|ct| wire.is_stream(&ct));

    if !(200..300).contains(&status) {
        let idle = gw.cfg.timeouts.idle;
        let read = read_whole(&mut up, session, MAX_ERROR_BODY, deadline, idle).await;
        release(gw, up, &peer);
        let body = read.map_err(|fail| fail.into_error(provider))?;
        let wait = retry_after.as_deref().and_then(routing::parse_retry_after);
        let e = wire.error(status, &body, &provider.name, retry_after);
        return Err(AttemptError::status(e, status, wait));
    }
    if plan.stream && is_stream {
        return relay::stream(gw, session, ctx, plan, provider, (up, &peer), deadline).await;
    }
    let (limit, idle) = (gw.cfg.limits.max_response_bytes, gw.cfg.timeouts.idle);
    let read = read_whole(&mut up, session, limit, deadline, idle).await;
    let body = read.map_err(|fail| fail.into_error(provider))?;
    release(gw, up, &peer);
    relay::whole(session, ctx, plan, wire, &body).await
}
