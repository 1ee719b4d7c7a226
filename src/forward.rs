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
use crate::upstream;

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
    pub deployment: Arc<Deployment>,
    /// The translated body, ready to send.
    pub body: Bytes,
    pub stream: bool,
    pub client_wants_usage: bool,
    pub public_model: String,
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

/// Sends `plan` upstream and relays the answer. `Err` only while nothing was sent to the client.
pub async fn forward(
    gw: &Gateway,
    session: &mut Session,
    ctx: &mut Ctx,
    plan: Plan,
) -> Result<(), ApiError> {
    let cfg = &gw.cfg;
    let provider = plan.deployment.provider.clone();
    let deadline = Deadline {
        end: ctx.start + cfg.timeouts.total,
    };
    let addr = gw.resolver.resolve(&provider).await.map_err(|m| {
        ApiError::bad_gateway(format!(
            "Could not reach the upstream provider '{}': {m}.",
            provider.name
        ))
        .with_code("upstream_unreachable")
    })?;
    let peer = upstream::peer(&provider, addr, cfg);
    let path = format!("{}{}", provider.openai_path, plan.endpoint.path());
    let header = request_header(
        &provider,
        &path,
        plan.body.len(),
        plan.stream,
        &ctx.request_id,
    )?;

    let mut up = match exchange_headers(
        gw, session, &peer, &provider, &header, &plan.body, &deadline,
    )
    .await
    {
        Ok(up) => up,
        Err(e) => {
            if e.code.as_deref() == Some(CLIENT_CLOSED) {
                ctx.client_gone = true;
            }
            return Err(e);
        }
    };
    let resp = up
        .response_header()
        .ok_or_else(|| ApiError::internal("The upstream response header is missing."))?;
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
        let body = read_whole(
            &mut up,
            session,
            MAX_ERROR_BODY,
            &deadline,
            cfg.timeouts.idle,
        )
        .await;
        release(gw, up, &peer).await;
        return match body {
            Ok(body) => Err(openai::upstream_error(
                status,
                &body,
                &provider,
                retry_after,
            )),
            Err(fail) => Err(read_fail_error(fail, &provider, ctx)),
        };
    }

    if plan.stream && is_sse {
        relay_stream(gw, session, ctx, &plan, up, &peer, &deadline).await;
        return Ok(());
    }
    let body = read_whole(
        &mut up,
        session,
        cfg.limits.max_response_bytes,
        &deadline,
        cfg.timeouts.idle,
    )
    .await;
    let body = match body {
        Ok(b) => b,
        Err(fail) => return Err(read_fail_error(fail, &provider, ctx)),
    };
    release(gw, up, &peer).await;
    if plan.stream {
        // The provider ignored `stream: true` and answered whole.
        let (bytes, usage) =
            openai::completion_to_sse(&body, &plan.public_model, plan.client_wants_usage)?;
        ctx.usage = usage;
        let h = sse_header(ctx);
        respond::json(session, ctx, 200, bytes, h).await;
        return Ok(());
    }
    let (bytes, usage) = openai::rewrite_response(&body, &plan.public_model)?;
    ctx.usage = usage;
    let h = respond::header(200, "application/json", ctx);
    respond::json(session, ctx, 200, bytes, h).await;
    Ok(())
}

fn request_header(
    provider: &Provider,
    path: &str,
    len: usize,
    stream: bool,
    request_id: &str,
) -> Result<RequestHeader, ApiError> {
    let build = || -> pingora::Result<RequestHeader> {
        let mut req = RequestHeader::build("POST", path.as_bytes(), Some(8))?;
        req.insert_header("host", provider.base.authority.as_str())?;
        req.insert_header("content-type", "application/json")?;
        req.insert_header("content-length", len)?;
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
async fn read_final_header(up: &mut HttpSession) -> pingora::Result<()> {
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

/// Response header for an event stream.
fn sse_header(ctx: &Ctx) -> pingora::http::ResponseHeader {
    let mut h = respond::header(200, "text/event-stream; charset=utf-8", ctx);
    h.insert_header("cache-control", "no-cache")
        .expect("static header");
    h.insert_header("x-accel-buffering", "no")
        .expect("static header");
    h
}

/// Relays an event stream, translating it chunk by chunk. Failures after the first byte are
/// sent as a final error event, never followed by `[DONE]`.
async fn relay_stream(
    gw: &Gateway,
    session: &mut Session,
    ctx: &mut Ctx,
    plan: &Plan,
    mut up: HttpSession,
    peer: &HttpPeer,
    deadline: &Deadline,
) {
    let provider = &plan.deployment.provider;
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
        return;
    }

    let mut translator = OpenAiStream::new(&plan.public_model, plan.client_wants_usage);
    let mut out = BytesMut::with_capacity(4096);
    let mut watch = true;
    let idle = gw.cfg.timeouts.idle;
    let failure: Option<ApiError> = loop {
        match read_chunk(&mut up, session, &mut watch, deadline, idle).await {
            Ok(Some(chunk)) => {
                if ctx.ttfb.is_none() {
                    ctx.ttfb = Some(ctx.start.elapsed());
                }
                if let Err(e) = translator.feed(&chunk, &mut out) {
                    break Some(e);
                }
                if translator.is_done() {
                    // The answer is complete; whatever the provider does next is not the
                    // client's concern.
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
                        return;
                    }
                }
            }
            Ok(None) => break translator.finish(&mut out).err(),
            Err(ReadFail::ClientGone) => {
                ctx.client_gone = true;
                ctx.usage = translator.usage();
                return;
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
    if failure.is_none() {
        drain_and_release(gw, up, peer).await;
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
