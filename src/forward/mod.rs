//! One exchange with a provider: connect (pooled), send the translated request, and relay the
//! answer to the client — whole for ordinary responses, event by event for streams.
//!
//! sluice drives the upstream exchange itself instead of through Pingora's `upstream_peer` /
//! `request_body_filter` phases. The route depends on `model`, which lives in the body, so the
//! body must be read in `request_filter`; Pingora then replays it upstream only from its retry
//! buffer, which holds at most 64 KiB (`BODY_BUF_LIMIT` in pingora-core 0.9): a larger body —
//! an image, a long conversation — would never be sent and the request would hang. Owning the
//! exchange also lets a stream that fails half-way end with an error event the client can see,
//! instead of a silently truncated answer. Connections still come from Pingora's pooled
//! connector, and responses go out through Pingora's downstream session.
//!
//! `mod.rs` holds the attempt loop (failover, retries, classification of failures);
//! `exchange` the HTTP exchange with a provider; `stream` the relay of event streams.

mod exchange;
mod guard;
mod stream;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pingora::proxy::Session;
use serde_json::{Map, Value};

use crate::config::{Deployment, ProviderKind};
use crate::core::ApiError;
use crate::core::StreamTranslator;
use crate::ctx::Ctx;
use crate::front::Front;
use crate::gateway::Gateway;
use crate::guardrails::Policy;
use crate::providers::{openai, Wire};
use crate::respond;
use crate::routing::{self, DeploymentState, Failure, Reason, RouteState, Router};
use crate::upstream;
use exchange::{
    client_gone, exchange_headers, read_fail_error, read_whole, release, MAX_ERROR_BODY,
};
pub(crate) use exchange::{read_final_header, request_header};
use stream::{relay_stream, sse_header};

/// Which endpoint a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `POST /v1/messages` (Anthropic Messages).
    Messages,
    /// `POST /v1/messages/count_tokens`: Anthropic deployments only, passed through.
    CountTokens,
    /// `POST /v1/responses` (OpenAI Responses, stateless).
    Responses,
}

impl Endpoint {
    /// The API whose shape the answer and errors take.
    pub fn front(self) -> Front {
        match self {
            Endpoint::Chat | Endpoint::Embeddings => Front::OpenAi,
            Endpoint::Messages | Endpoint::CountTokens => Front::Anthropic,
            Endpoint::Responses => Front::Responses,
        }
    }
}

/// Everything needed to send one request upstream.
pub struct Plan {
    pub endpoint: Endpoint,
    pub route: Arc<RouteState>,
    /// The client's body; rendered for each deployment that is tried.
    pub body: Map<String, Value>,
    pub stream: bool,
    pub client_wants_usage: bool,
    /// The key's guardrails; its output rules apply to the answer.
    pub guardrails: Arc<Policy>,
    /// The body as the client sent it (Anthropic Messages, OpenAI Responses), for deployments
    /// that speak the client's API.
    pub native: Option<Map<String, Value>>,
}

impl Plan {
    /// Whether the client's own body goes to this deployment unchanged (but for the model):
    /// Anthropic Messages to Anthropic, unless output guardrails must read the answer as
    /// OpenAI chunks.
    fn is_native(&self, wire: Wire) -> bool {
        self.native.is_some()
            && match (self.endpoint, wire.kind) {
                (Endpoint::CountTokens, ProviderKind::Anthropic) => true,
                (Endpoint::Messages, ProviderKind::Anthropic)
                | (Endpoint::Responses, ProviderKind::OpenAi) => !self.guardrails.has_output(),
                _ => false,
            }
    }

    /// The upstream body for `model` in the `wire` format.
    fn render(&mut self, wire: Wire, model: &str) -> Result<Bytes, ApiError> {
        if self.is_native(wire) {
            let native = self.native.as_ref().expect("is_native checked it");
            return Ok(crate::inbound::native::render(native, model));
        }
        if self.endpoint == Endpoint::CountTokens {
            return Err(ApiError::invalid_request(
                "Token counting is only available for models served by Anthropic deployments.",
            ));
        }
        wire.render(
            &mut self.body,
            model,
            self.stream,
            self.endpoint == Endpoint::Embeddings,
        )
    }

    /// The upstream path (under the API root) for `model` in the `wire` format.
    fn path(&self, wire: Wire, model: &str) -> String {
        match self.endpoint {
            Endpoint::CountTokens => "/messages/count_tokens".into(),
            Endpoint::Responses if self.is_native(wire) => "/responses".into(),
            _ if self.is_native(wire) => "/messages".into(),
            e => wire.path(e == Endpoint::Embeddings, model, self.stream),
        }
    }

    /// The translator for a streamed answer from a `wire` deployment: the provider's stream
    /// → OpenAI chunks → output guardrails → the client's API.
    fn stream_translator(&self, wire: Wire) -> Box<dyn StreamTranslator> {
        let public = &self.route.route.name;
        if self.is_native(wire) {
            return match self.endpoint {
                Endpoint::Responses => {
                    Box::new(crate::inbound::native::NativeResponsesStream::new(public))
                }
                _ => Box::new(crate::inbound::native::NativeMessagesStream::new(public)),
            };
        }
        let t = wire.stream(public, self.client_wants_usage);
        let t = guard::guarded(t, &self.guardrails);
        self.endpoint.front().encode_stream(t, public)
    }
}

/// The provider's credential, to scrub from what it sends back.
fn provider_secret(provider: &crate::config::Provider) -> Option<&str> {
    provider.api_key.as_ref().map(|k| k.expose())
}

/// Error code for a client that went away; its answer is never seen.
const CLIENT_CLOSED: &str = "client_closed";

fn client_closed() -> ApiError {
    ApiError::invalid_request("The client closed the connection.").with_code(CLIENT_CLOSED)
}

struct Deadline {
    end: Instant,
}

impl Deadline {
    fn left(&self) -> Duration {
        self.end.saturating_duration_since(Instant::now())
    }

    /// The shorter of `phase` and what is left of the whole request's time.
    fn cap(&self, phase: Duration) -> (Duration, &'static str) {
        let left = self.end.saturating_duration_since(Instant::now());
        if left < phase {
            (left, "total")
        } else {
            (phase, "")
        }
    }
}

/// Sends `plan` upstream — failing over between deployments and retrying as the route's
/// health and the retry policy allow — and relays the answer. `Err` only while nothing was
/// sent to the client.
pub async fn forward(
    gw: &Gateway,
    session: &mut Session,
    ctx: &mut Ctx,
    mut plan: Plan,
) -> Result<(), ApiError> {
    let router = &gw.router;
    let retry = &gw.cfg.retry;
    let deadline = Deadline {
        end: ctx.start + gw.cfg.timeouts.total,
    };
    router.budget.on_request();
    let mut tried: Vec<usize> = Vec::with_capacity(retry.max_attempts as usize);
    let mut last: Option<ApiError> = None;
    let mut rendered: Option<(Wire, String, Bytes)> = None;
    for attempt in 0..retry.max_attempts {
        let (idx, reason) = router.choose(&plan.route, &tried);
        let dep = plan.route.deployments[idx].clone();
        // Failing over to an untried, available deployment adds no load where the failure
        // was; anything else — the same deployment again, a failing one, a wait — is a retry
        // and needs the budget.
        let failover = reason == Reason::Fresh && router.is_available(&dep);
        if attempt > 0 && !failover && !router.budget.try_retry() {
            gw.metrics.retry_budget_denied.inc();
            log::warn!(
                "request {}: retry budget spent, not retrying",
                ctx.request_id
            );
            break;
        }
        let wait = match reason {
            Reason::Fresh => Duration::ZERO,
            Reason::Again => routing::backoff(attempt, retry.backoff_base, retry.backoff_max),
            Reason::Cooldown(left) => left,
        };
        if !wait.is_zero() {
            if wait > retry.max_wait || wait >= deadline.left() {
                return Err(cooling_down(router, &plan, &dep, wait, last));
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
        if tried.last().is_some_and(|&prev| prev != idx) {
            gw.metrics
                .failovers
                .with_label_values(&[plan.route.route.name.as_str()])
                .inc();
        }
        tried.push(idx);
        let deployment = &dep.deployment;
        let outcome = |o: &str| {
            gw.metrics
                .attempts
                .with_label_values(&[
                    deployment.provider.name.as_str(),
                    deployment.model.as_str(),
                    o,
                ])
                .inc();
        };
        // Translated once per wire format and model, replayed on every attempt.
        let wire = Wire::of(deployment.provider.kind);
        let body = match &rendered {
            Some((w, model, body)) if *w == wire && *model == deployment.model => body.clone(),
            _ => match plan.render(wire, &deployment.model) {
                Ok(body) => {
                    rendered = Some((wire, deployment.model.clone(), body.clone()));
                    body
                }
                // The request cannot be expressed for this deployment: try another one.
                Err(e) if tried.len() < plan.route.deployments.len() => {
                    last = Some(e);
                    continue;
                }
                Err(e) => return Err(last.filter(|l| l.status >= 500).unwrap_or(e)),
            },
        };
        ctx.attempts += 1;
        ctx.provider = Some(deployment.provider.name.clone());
        ctx.upstream_model = Some(deployment.model.clone());
        let _in_flight = router.begin(&dep);
        match attempt_once(gw, session, ctx, &plan, deployment, body, &deadline).await {
            Attempt::Done => {
                outcome("success");
                router.record_success(&dep);
                return Ok(());
            }
            Attempt::StreamFailed => {
                outcome("stream_error");
                router.record_stream_failure(&dep);
                return Ok(());
            }
            Attempt::Final(e) => {
                let e = e.from_provider(provider_secret(&deployment.provider));
                if e.code.as_deref() == Some(CLIENT_CLOSED) {
                    ctx.client_gone = true;
                } else {
                    outcome("error");
                }
                return Err(e);
            }
            Attempt::Retry(e, failure) => {
                let e = e.from_provider(provider_secret(&deployment.provider));
                outcome("retry");
                log::warn!(
                    "request {}: attempt {} on {}/{} failed: {}",
                    ctx.request_id,
                    attempt + 1,
                    deployment.provider.name,
                    deployment.model,
                    e.message
                );
                router.record_failure(&dep, failure);
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| ApiError::internal("No attempt was made.")))
}

/// A whole answer from a `wire` deployment → what the client gets: the body, the usage, and
/// whether it is an event stream (a provider that ignored `stream: true`).
fn whole_answer(
    plan: &Plan,
    wire: Wire,
    body: &[u8],
    ctx: &mut Ctx,
) -> Result<(Bytes, Option<crate::core::Usage>, bool), ApiError> {
    let public = &plan.route.route.name;
    if plan.endpoint == Endpoint::CountTokens {
        return Ok((Bytes::copy_from_slice(body), None, false));
    }
    // A native answer goes back as it is — unless an Anthropic provider answered whole to a
    // streamed request: then it is encoded as the event stream the client asked for.
    let anthropic_stream = plan.stream && plan.endpoint == Endpoint::Messages;
    if plan.is_native(wire) && !anthropic_stream {
        let responses = plan.endpoint == Endpoint::Responses;
        let (b, u) = crate::inbound::native::response(body, public, responses)?;
        return Ok((b, u, false));
    }
    let embeddings = plan.endpoint == Endpoint::Embeddings;
    let (b, usage) = wire.response(body, public, embeddings)?;
    let b = if plan.guardrails.has_output() && !embeddings {
        let (guarded, findings) = guard::guard_completion(&plan.guardrails, &b);
        ctx.guardrails
            .extend(findings.into_iter().map(|f| ("output", f)));
        guarded.map_or(b, Bytes::from)
    } else {
        b
    };
    let front = plan.endpoint.front();
    if !plan.stream {
        return Ok((front.encode_whole(b, public)?, usage, false));
    }
    // The provider ignored `stream: true` and answered whole: the client still gets a stream.
    let (sse, usage) = openai::completion_to_sse(&b, public, plan.client_wants_usage)?;
    if front == Front::OpenAi {
        return Ok((sse, usage, true));
    }
    let chunks = Wire::of(ProviderKind::OpenAi).stream(public, true);
    let mut encoder = front.encode_stream(chunks, public);
    let mut out = bytes::BytesMut::new();
    encoder.feed(&sse, &mut out)?;
    encoder.finish(&mut out)?;
    Ok((out.freeze(), usage, true))
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
    let status = match router.cooldown_status(dep) {
        429 => 429,
        _ => 503,
    };
    let mut e = ApiError::upstream(
        status,
        if status == 429 {
            "rate_limit_error"
        } else {
            "api_error"
        },
        format!(
            "The model `{}` is temporarily unavailable: its providers asked for a pause. \
             Retry after {} seconds.",
            plan.route.route.name,
            retry_after.as_deref().unwrap_or("1")
        ),
    )
    .with_retry_after(retry_after);
    e.code = Some(
        if status == 429 {
            "rate_limit_exceeded"
        } else {
            "upstream_unavailable"
        }
        .into(),
    );
    e
}

/// How one attempt ended.
enum Attempt {
    /// The answer was sent to the client.
    Done,
    /// A stream started and then failed; the client got an error event.
    StreamFailed,
    /// Nothing was sent; the error goes to the client as it is.
    Final(ApiError),
    /// Nothing was sent; another attempt may succeed.
    Retry(ApiError, Failure),
}

/// Statuses worth another attempt; every other error goes straight back.
fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504 | 529)
}

/// Classifies an error that happened before anything was sent to the client.
fn before_commit(e: ApiError) -> Attempt {
    if e.code.as_deref() == Some(CLIENT_CLOSED) || e.status == 500 {
        Attempt::Final(e)
    } else {
        Attempt::Retry(
            e,
            Failure {
                status: 0,
                retry_after: None,
            },
        )
    }
}

async fn attempt_once(
    gw: &Gateway,
    session: &mut Session,
    ctx: &mut Ctx,
    plan: &Plan,
    deployment: &Deployment,
    body: Bytes,
    deadline: &Deadline,
) -> Attempt {
    let cfg = &gw.cfg;
    let provider = &deployment.provider;
    let addr = match gw.resolver.resolve(provider).await {
        Ok(a) => a,
        Err(m) => {
            return before_commit(
                ApiError::bad_gateway(format!(
                    "Could not reach the upstream provider '{}': {m}.",
                    provider.name
                ))
                .with_code("upstream_unreachable"),
            )
        }
    };
    let peer = upstream::peer(provider, addr, cfg);
    let wire = Wire::of(provider.kind);
    let path = format!(
        "{}{}",
        provider.api_root,
        plan.path(wire, &deployment.model)
    );
    let header = match request_header(
        provider,
        "POST",
        &path,
        Some(body.len()),
        plan.stream,
        &ctx.request_id,
    ) {
        Ok(h) => h,
        Err(e) => return Attempt::Final(e),
    };
    let mut up =
        match exchange_headers(gw, session, &peer, provider, &header, &body, deadline).await {
            Ok(up) => up,
            Err(e) => return before_commit(e),
        };
    let Some(resp) = up.response_header() else {
        return Attempt::Final(ApiError::internal(
            "The upstream response header is missing.",
        ));
    };
    let status = resp.status.as_u16();
    ctx.upstream_status = Some(status);
    let retry_after = resp
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let is_stream = resp
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| wire.is_stream(ct));

    if !(200..300).contains(&status) {
        let read = read_whole(
            &mut up,
            session,
            MAX_ERROR_BODY,
            deadline,
            cfg.timeouts.idle,
        )
        .await;
        release(gw, up, &peer).await;
        let body = match read {
            Ok(b) => b,
            Err(fail) => return before_commit(read_fail_error(fail, provider, ctx)),
        };
        let wait = retry_after.as_deref().and_then(routing::parse_retry_after);
        let e = wire.error(status, &body, &provider.name, retry_after);
        return if retryable_status(status) {
            Attempt::Retry(
                e,
                Failure {
                    status,
                    retry_after: wait,
                },
            )
        } else {
            Attempt::Final(e)
        };
    }

    if plan.stream && is_stream {
        return relay_stream(gw, session, ctx, plan, provider, (up, &peer), deadline).await;
    }
    let read = read_whole(
        &mut up,
        session,
        cfg.limits.max_response_bytes,
        deadline,
        cfg.timeouts.idle,
    )
    .await;
    let body = match read {
        Ok(b) => b,
        Err(fail) => return before_commit(read_fail_error(fail, provider, ctx)),
    };
    release(gw, up, &peer).await;
    let translated = whole_answer(plan, wire, &body, ctx);
    match translated {
        Ok((bytes, usage, stream)) => {
            ctx.usage = usage;
            ctx.usage_final = true;
            let h = if stream {
                sse_header(ctx)
            } else {
                respond::header(200, "application/json", ctx)
            };
            respond::json(session, ctx, 200, bytes, h).await;
            Attempt::Done
        }
        Err(e) => before_commit(e),
    }
}
