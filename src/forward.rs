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

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;

use crate::api::ApiError;
use crate::config::{Deployment, Provider};
use crate::ctx::Ctx;
use crate::gateway::Gateway;
use crate::providers::openai::{self, OpenAiStream};
use crate::providers::StreamTranslator;
use crate::respond;
use crate::routing::{self, DeploymentState, Failure, Reason, RouteState, Router};
use crate::upstream;
use serde_json::{Map, Value};

/// Largest error body read from a provider.
const MAX_ERROR_BODY: usize = 1 << 20;
/// How long to wait for the end of a provider's body after its terminal event.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
/// How many pooled connections may turn out to be stale before a fresh one is used.
const STALE_RETRIES: usize = 2;

/// Which OpenAI endpoint a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Embeddings,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/chat/completions",
            Endpoint::Embeddings => "/embeddings",
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
}

impl Plan {
    /// The upstream body for a deployment whose model is `upstream_model`.
    fn render(&mut self, upstream_model: &str) -> Bytes {
        openai::prepare_request(&mut self.body, upstream_model, self.stream);
        let mut out = Vec::with_capacity(256);
        serde_json::to_writer(&mut out, &self.body).expect("JSON values serialise");
        Bytes::from(out)
    }
}

/// Error code for a client that went away; its answer is never seen.
const CLIENT_CLOSED: &str = "client_closed";

fn client_closed() -> ApiError {
    ApiError::invalid_request("The client closed the connection.").with_code(CLIENT_CLOSED)
}

/// What stopped a read from the provider.
enum ReadFail {
    Timeout(&'static str),
    Io(String),
    ClientGone,
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
    let mut rendered: Option<(String, Bytes)> = None;
    for attempt in 0..retry.max_attempts {
        if attempt > 0 && !router.budget.try_retry() {
            gw.metrics.retry_budget_denied.inc();
            log::warn!(
                "request {}: retry budget spent, not retrying",
                ctx.request_id
            );
            break;
        }
        let (idx, reason) = router.choose(&plan.route, &tried);
        let dep = plan.route.deployments[idx].clone();
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
        ctx.attempts += 1;
        ctx.provider = Some(deployment.provider.name.clone());
        ctx.upstream_model = Some(deployment.model.clone());
        let body = match &rendered {
            Some((model, body)) if *model == deployment.model => body.clone(),
            _ => {
                let body = plan.render(&deployment.model);
                rendered = Some((deployment.model.clone(), body.clone()));
                body
            }
        };
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
                if e.code.as_deref() == Some(CLIENT_CLOSED) {
                    ctx.client_gone = true;
                } else {
                    outcome("error");
                }
                return Err(e);
            }
            Attempt::Retry(e, failure) => {
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
    let path = format!("{}{}", provider.openai_path, plan.endpoint.path());
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
    let is_sse = resp
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"));

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
        let e = openai::upstream_error(status, &body, provider, retry_after);
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

    if plan.stream && is_sse {
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
    let public = &plan.route.route.name;
    let translated = if plan.stream {
        // The provider ignored `stream: true` and answered whole.
        openai::completion_to_sse(&body, public, plan.client_wants_usage)
            .map(|(b, u)| (b, u, sse_header(ctx)))
    } else {
        openai::rewrite_response(&body, public)
            .map(|(b, u)| (b, u, respond::header(200, "application/json", ctx)))
    };
    match translated {
        Ok((bytes, usage, h)) => {
            ctx.usage = usage;
            respond::json(session, ctx, 200, bytes, h).await;
            Attempt::Done
        }
        Err(e) => before_commit(e),
    }
}

/// Builds a request to `provider` from scratch: nothing of the client's request but the body
/// goes upstream. `body_len` is `None` for requests without a body.
pub(crate) fn request_header(
    provider: &Provider,
    method: &str,
    path: &str,
    body_len: Option<usize>,
    stream: bool,
    request_id: &str,
) -> Result<RequestHeader, ApiError> {
    let build = || -> pingora::Result<RequestHeader> {
        let mut req = RequestHeader::build(method, path.as_bytes(), Some(8))?;
        req.insert_header("host", provider.base.authority.as_str())?;
        if let Some(len) = body_len {
            req.insert_header("content-type", "application/json")?;
            req.insert_header("content-length", len)?;
        }
        req.insert_header(
            "accept",
            if stream {
                "text/event-stream"
            } else {
                "application/json"
            },
        )?;
        req.insert_header("user-agent", concat!("sluice/", env!("CARGO_PKG_VERSION")))?;
        req.insert_header("x-request-id", request_id)?;
        if let Some(key) = &provider.api_key {
            let mut v = http::HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                .map_err(|_| pingora::Error::new_str("api key is not a valid header value"))?;
            v.set_sensitive(true);
            req.insert_header("authorization", v)?;
        }
        for (name, value) in &provider.headers {
            req.insert_header(name.clone(), value.clone())?;
        }
        Ok(req)
    };
    build().map_err(|_| {
        ApiError::internal(format!(
            "Could not build the request for provider '{}'.",
            provider.name
        ))
    })
}

/// Connects, sends the request and reads the response header. A pooled connection that turns
/// out to be closed is replaced before anything was received, which is always safe: the
/// provider never saw a complete request on it.
async fn exchange_headers(
    gw: &Gateway,
    session: &mut Session,
    peer: &HttpPeer,
    provider: &Provider,
    header: &RequestHeader,
    body: &Bytes,
    deadline: &Deadline,
) -> Result<HttpSession, ApiError> {
    let timeouts = &gw.cfg.timeouts;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (connect_t, _) = deadline.cap(timeouts.connect);
        let (mut up, reused) =
            match tokio::time::timeout(connect_t, gw.connector.get_http_session(peer)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    return Err(ApiError::bad_gateway(format!(
                        "Could not connect to the upstream provider '{}': {}.",
                        provider.name,
                        describe(&e)
                    ))
                    .with_code("upstream_unreachable"))
                }
                Err(_) => {
                    return Err(ApiError::gateway_timeout(format!(
                        "Connecting to the upstream provider '{}' timed out after {}.",
                        provider.name,
                        secs(connect_t)
                    )))
                }
            };
        let (write_t, _) = deadline.cap(timeouts.first_byte);
        up.set_write_timeout(Some(write_t));
        let sent = async {
            up.write_request_header(Box::new(header.clone())).await?;
            up.write_request_body(body.clone(), true).await?;
            up.finish_request_body().await
        }
        .await;
        let result = match sent {
            Ok(()) => {
                let (t, which) = deadline.cap(timeouts.first_byte);
                let mut watch = true;
                let header = tokio::select! {
                    r = tokio::time::timeout(t, read_final_header(&mut up)) => Some(r),
                    _ = client_gone(session, &mut watch) => None,
                };
                match header {
                    // Dropping `up` closes the connection: the provider stops working for
                    // a client that is no longer there.
                    None => return Err(client_closed()),
                    Some(Ok(r)) => r,
                    Some(Err(_)) => {
                        return Err(ApiError::gateway_timeout(format!(
                            "The upstream provider '{}' did not respond within {}{}.",
                            provider.name,
                            secs(t),
                            if which == "total" {
                                " (the request's total time limit)"
                            } else {
                                ""
                            }
                        )))
                    }
                }
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => return Ok(up),
            Err(_) if reused && attempts <= STALE_RETRIES => {
                log::debug!(
                    "pooled connection to {} was stale; reconnecting",
                    provider.name
                );
                continue;
            }
            Err(e) => {
                return Err(ApiError::bad_gateway(format!(
                    "The upstream provider '{}' closed the connection without answering: {}.",
                    provider.name,
                    describe(&e)
                ))
                .with_code("upstream_connection_failed"))
            }
        }
    }
}

/// Reads response headers, skipping informational (1xx) ones.
pub(crate) async fn read_final_header(up: &mut HttpSession) -> pingora::Result<()> {
    for _ in 0..4 {
        up.read_response_header().await?;
        if up
            .response_header()
            .is_some_and(|h| !h.status.is_informational())
        {
            return Ok(());
        }
    }
    pingora::Error::e_explain(
        pingora::ErrorType::InvalidHTTPHeader,
        "too many informational responses",
    )
}

fn describe(e: &pingora::Error) -> String {
    // The error type is enough to act on and never carries request data or credentials.
    e.etype().as_str().to_string()
}

fn secs(d: Duration) -> String {
    if d.as_millis() % 1000 == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn read_fail_error(fail: ReadFail, provider: &Provider, ctx: &mut Ctx) -> ApiError {
    match fail {
        ReadFail::Timeout(which) => ApiError::gateway_timeout(format!(
            "The upstream provider '{}' stopped sending its response ({} timeout).",
            provider.name, which
        )),
        ReadFail::Io(what) => ApiError::bad_gateway(format!(
            "The connection to the upstream provider '{}' failed while reading its response: {what}.",
            provider.name
        ))
        .with_code("upstream_connection_failed"),
        ReadFail::ClientGone => {
            ctx.client_gone = true;
            client_closed()
        }
    }
}

/// Watches the client connection while waiting on the provider. Resolves when the client has
/// gone away; stays pending otherwise.
async fn client_gone(session: &mut Session, watch: &mut bool) {
    if !*watch {
        return std::future::pending().await;
    }
    match session.downstream_session.read_body_or_idle(true).await {
        Err(_) => {}
        Ok(_) => {
            // Data after a complete request (pipelining): stop watching, keep serving.
            *watch = false;
            std::future::pending::<()>().await
        }
    }
}

/// One read from the provider, bounded by `idle` and the deadline, abandoned if the client
/// goes away.
async fn read_chunk(
    up: &mut HttpSession,
    session: &mut Session,
    watch: &mut bool,
    deadline: &Deadline,
    idle: Duration,
) -> Result<Option<Bytes>, ReadFail> {
    let (t, which) = deadline.cap(idle);
    let which = if which.is_empty() { "idle" } else { which };
    tokio::select! {
        r = tokio::time::timeout(t, up.read_response_body()) => match r {
            Ok(Ok(b)) => Ok(b),
            Ok(Err(e)) => Err(ReadFail::Io(describe(&e))),
            Err(_) => Err(ReadFail::Timeout(which)),
        },
        _ = client_gone(session, watch) => Err(ReadFail::ClientGone),
    }
}

/// Reads a whole response body of at most `limit` bytes.
async fn read_whole(
    up: &mut HttpSession,
    session: &mut Session,
    limit: usize,
    deadline: &Deadline,
    idle: Duration,
) -> Result<Bytes, ReadFail> {
    let mut buf = BytesMut::new();
    let mut watch = true;
    while let Some(chunk) = read_chunk(up, session, &mut watch, deadline, idle).await? {
        if buf.len() + chunk.len() > limit {
            return Err(ReadFail::Io(format!(
                "the response is larger than {limit} bytes"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Returns a connection whose exchange completed to the pool; others are closed.
async fn release(gw: &Gateway, mut up: HttpSession, peer: &HttpPeer) {
    if up.response_done() {
        gw.connector
            .release_http_session(up, peer, Some(gw.cfg.upstream.keepalive_idle))
            .await;
    }
}

/// Counts a stream in `sluice_active_streams` while it lives.
struct ActiveStream<'a>(&'a prometheus::IntGauge);

impl<'a> ActiveStream<'a> {
    fn new(m: &'a crate::telemetry::Metrics) -> Self {
        m.active_streams.inc();
        ActiveStream(&m.active_streams)
    }
}

impl Drop for ActiveStream<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Response header for an event stream.
fn sse_header(ctx: &Ctx) -> pingora::http::ResponseHeader {
    let mut h = respond::header(200, "text/event-stream; charset=utf-8", ctx);
    h.insert_header("cache-control", "no-cache")
        .expect("static header");
    h.insert_header("x-accel-buffering", "no")
        .expect("static header");
    h
}

/// Relays an event stream, translating it chunk by chunk. Nothing is sent to the client
/// until the provider's first event has been translated, so a stream that fails before that
/// can still be retried elsewhere. Failures after that are sent as a final error event, never
/// followed by `[DONE]`.
async fn relay_stream(
    gw: &Gateway,
    session: &mut Session,
    ctx: &mut Ctx,
    plan: &Plan,
    provider: &Provider,
    (mut up, peer): (HttpSession, &HttpPeer),
    deadline: &Deadline,
) -> Attempt {
    let mut translator = OpenAiStream::new(&plan.route.route.name, plan.client_wants_usage);
    let mut out = BytesMut::with_capacity(4096);
    let mut watch = true;
    let idle = gw.cfg.timeouts.idle;

    while out.is_empty() && !translator.is_done() {
        match read_chunk(&mut up, session, &mut watch, deadline, idle).await {
            Ok(Some(chunk)) => {
                ctx.ttfb.get_or_insert_with(|| ctx.start.elapsed());
                if let Err(e) = translator.feed(&chunk, &mut out) {
                    return before_commit(e);
                }
            }
            Ok(None) => {
                if let Err(e) = translator.finish(&mut out) {
                    return before_commit(e);
                }
            }
            Err(fail) => return before_commit(read_fail_error(fail, provider, ctx)),
        }
    }

    let mut h = sse_header(ctx);
    if !session.as_downstream().is_http2() {
        h.insert_header("transfer-encoding", "chunked")
            .expect("static header");
    }
    ctx.status = 200;
    if session
        .write_response_header(Box::new(h), false)
        .await
        .is_err()
    {
        ctx.client_gone = true;
        return Attempt::Done;
    }
    let _active = ActiveStream::new(&gw.metrics);
    let gaps = gw
        .metrics
        .chunk_gap
        .with_label_values(&[provider.name.as_str()]);
    let mut last_chunk = Instant::now();

    let failure: Option<ApiError> = loop {
        if translator.is_done() {
            // The answer is complete; whatever the provider does next is not the client's
            // concern.
            break None;
        }
        if !out.is_empty() {
            let data = out.split().freeze();
            if session
                .write_response_body(Some(data), false)
                .await
                .is_err()
            {
                ctx.client_gone = true;
                ctx.usage = translator.usage();
                return Attempt::Done;
            }
        }
        match read_chunk(&mut up, session, &mut watch, deadline, idle).await {
            Ok(Some(chunk)) => {
                let now = Instant::now();
                gaps.observe(now.duration_since(last_chunk).as_secs_f64());
                last_chunk = now;
                if let Err(e) = translator.feed(&chunk, &mut out) {
                    break Some(e);
                }
            }
            Ok(None) => {
                if let Err(e) = translator.finish(&mut out) {
                    break Some(e);
                }
            }
            Err(ReadFail::ClientGone) => {
                ctx.client_gone = true;
                ctx.usage = translator.usage();
                return Attempt::Done;
            }
            Err(fail) => break Some(read_fail_error(fail, provider, ctx)),
        }
    };
    ctx.usage = translator.usage();
    if let Some(e) = &failure {
        log::warn!(
            "request {}: stream from provider '{}' failed: {}",
            ctx.request_id,
            provider.name,
            e.message
        );
        ctx.error = Some(e.origin.as_str());
        out.extend_from_slice(&e.sse_event());
    }
    let data = out.split().freeze();
    if session.write_response_body(Some(data), true).await.is_err() {
        ctx.client_gone = true;
    }
    match failure {
        Some(_) => Attempt::StreamFailed,
        None => {
            drain_and_release(gw, up, peer).await;
            Attempt::Done
        }
    }
}

/// After the terminal event, reads what is left of the provider's body (briefly) so the
/// connection can go back to the pool; a provider that keeps it open is cut off instead.
async fn drain_and_release(gw: &Gateway, mut up: HttpSession, peer: &HttpPeer) {
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        let mut left = MAX_ERROR_BODY;
        while !up.response_done() {
            match up.read_response_body().await {
                Ok(Some(b)) if b.len() <= left => left -= b.len(),
                Ok(None) => break,
                _ => return false,
            }
        }
        true
    })
    .await;
    if drained == Ok(true) {
        release(gw, up, peer).await;
    }
}
