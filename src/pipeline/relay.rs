//! Relay: the provider's answer to the client in the client's API — a whole answer
//! translated at once ([`whole`]), or an event stream translated chunk by chunk ([`stream`]),
//! with output guardrails in between.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use pingora::upstreams::peer::HttpPeer;

use super::attempt::{Answered, AttemptError, Deadline};
use super::cache;
use super::exchange::{client_closed, drain_and_release, read_chunk};
use super::guard_output;
use super::guard_webhook::{self, Gate};
use super::plan::Plan;
use super::settle::record_stream;
use super::traced;
use crate::config::Provider;
use crate::core::time::Watchdog;
use crate::core::{ApiError, StreamTranslator, Usage};
use crate::ctx::Ctx;
use crate::downstream::{Head, Session};
use crate::pipeline::gateway::Gateway;
use crate::pipeline::respond;
use crate::providers::Wire;
use crate::upstream::Upstream;

/// Sends a whole answer from a `wire` deployment.
pub(super) async fn whole(
    session: &mut Session<'_>,
    ctx: &mut Ctx,
    plan: &Plan,
    wire: Wire,
    body: &[u8],
) -> Result<Answered, AttemptError> {
    let (bytes, usage, stream) = whole_answer(plan, wire, body, ctx)
        .await
        .map_err(AttemptError::failed)?;
    send_whole(session, ctx, bytes, usage, stream).await;
    Ok(Answered::Complete)
}

/// Sends an answer held whole — JSON, or an event stream (`stream`) — with the usage it
/// settles at.
pub(super) async fn send_whole(
    session: &mut Session<'_>,
    ctx: &mut Ctx,
    body: Bytes,
    usage: Option<Usage>,
    stream: bool,
) {
    ctx.usage = usage;
    ctx.usage_final = true;
    let h = if stream {
        sse_header(ctx)
    } else {
        respond::header(200, "application/json", ctx)
    };
    respond::json(session, ctx, 200, body, h).await;
}

/// A whole answer → what the client gets: the body, the usage, and whether it is an event
/// stream (a provider that ignored `stream: true`).
async fn whole_answer(
    plan: &Plan,
    wire: Wire,
    body: &[u8],
    ctx: &mut Ctx,
) -> Result<(Bytes, Option<Usage>, bool), ApiError> {
    let public = plan.public();
    if plan.is_native(wire) {
        if let Some(answer) = plan
            .door()
            .native_whole(plan.endpoint, body, public, plan.stream)
        {
            let (b, u) = answer?;
            if let Some((capture, _)) = &plan.capture {
                if let Some(c) = plan.door().native_as_chat(&b, public) {
                    capture.set(c);
                }
            }
            return Ok((b, u, false));
        }
    }
    let embeddings = !plan.endpoint.is_chat();
    let (b, usage) = wire.response(body, public, embeddings)?;
    traced::record_whole(ctx, &b);
    let b = if plan.guardrails.has_output() && !embeddings {
        let (guarded, findings) = guard_output::guard_completion(&plan.guardrails, &b);
        ctx.guardrails
            .extend(findings.into_iter().map(|f| ("output", f)));
        let b = guarded.map_or(b, Bytes::from);
        guard_webhook::whole(plan, ctx, b).await
    } else {
        b
    };
    if let Some((capture, _)) = &plan.capture {
        capture.set(b.clone());
    }
    // A provider that ignored `stream: true` and answered whole: the client still gets a
    // stream.
    let (b, _, stream) = cache::render(
        plan.front,
        public,
        (plan.stream, plan.client_wants_usage),
        b,
    )?;
    Ok((b, usage, stream))
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

/// Bytes of a streamed answer so far, against `limits.max_stream_bytes`: an answer that
/// never ends cannot hold a stream (and what its translator keeps) forever.
struct StreamSize {
    seen: usize,
    max: usize,
}

impl StreamSize {
    fn add(&mut self, n: usize, provider: &Provider) -> Result<(), ApiError> {
        self.seen = self.seen.saturating_add(n);
        if self.seen <= self.max {
            return Ok(());
        }
        Err(ApiError::bad_gateway(format!(
            "The answer from the upstream provider '{}' exceeded the gateway's limit of {} \
             bytes for a streamed answer (limits.max_stream_bytes).",
            provider.name, self.max
        ))
        .with_code("response_too_large"))
    }
}

/// Response header for an event stream.
pub(super) fn sse_header(ctx: &Ctx) -> Head {
    let mut h = respond::header(200, "text/event-stream; charset=utf-8", ctx);
    h.insert("cache-control", "no-cache");
    h.insert("x-accel-buffering", "no");
    h
}

/// A stream being relayed: the provider's side and what has been translated so far.
struct Relay<'a> {
    gw: &'a Gateway,
    provider: &'a Provider,
    /// Bounds each read: the idle limit, and the request's end.
    dog: Watchdog,
    up: Upstream,
    translator: Box<dyn StreamTranslator>,
    out: BytesMut,
    size: StreamSize,
    /// Whether the client's connection is still watched for a disconnect.
    watch: bool,
    /// The output webhooks' hold on translated pieces, when the key has any.
    gate: Option<Gate>,
}

impl Relay<'_> {
    /// Reads one chunk from the provider and translates it into `out`. `Ok(false)` when the
    /// client left.
    async fn step(&mut self, session: &mut Session<'_>, ctx: &mut Ctx) -> Result<bool, ApiError> {
        match read_chunk(&mut self.up, session, &mut self.watch, &mut self.dog).await {
            Ok(Some(chunk)) => {
                ctx.ttfb.get_or_insert_with(|| ctx.start.elapsed());
                self.size.add(chunk.len(), self.provider)?;
                self.translator.feed(&chunk, &mut self.out)?;
            }
            Ok(None) => self.translator.finish(&mut self.out)?,
            Err(fail) => match fail.error(self.provider) {
                Some(e) => return Err(e),
                None => return Ok(false),
            },
        }
        Ok(true)
    }

    /// Passes what was translated through the output webhooks' gate: `out` then holds what
    /// may be sent. `Err` when a webhook blocked the answer.
    async fn gate(&mut self, ctx: &mut Ctx) -> Result<(), ApiError> {
        let end = self.translator.is_done();
        match &mut self.gate {
            Some(g) => g.pass(&mut self.out, end, ctx).await,
            None => Ok(()),
        }
    }
}

/// Relays an event stream, translating it chunk by chunk. Nothing is sent to the client
/// until the provider's first event has been translated, so a stream that fails before that
/// can still be retried elsewhere. Failures after that are sent as a final error event, never
/// followed by `[DONE]`.
pub(super) async fn stream(
    gw: &Gateway,
    session: &mut Session<'_>,
    ctx: &mut Ctx,
    plan: &mut Plan,
    provider: &Provider,
    (up, peer): (Upstream, &HttpPeer),
    deadline: &Deadline,
) -> Result<Answered, AttemptError> {
    let (gate, tap) = Gate::new(plan).unzip();
    let mut relay = Relay {
        gw,
        provider,
        dog: Watchdog::new(gw.cfg.timeouts.idle, deadline.end()),
        up,
        translator: plan.stream_translator(
            Wire::of(provider.kind),
            tap,
            ctx.sampled_trace().is_some(),
        ),
        out: BytesMut::with_capacity(1024),
        size: StreamSize {
            seen: 0,
            max: gw.cfg.limits.max_stream_bytes,
        },
        watch: true,
        gate,
    };
    while relay.out.is_empty() && !relay.translator.is_done() {
        match relay.step(session, ctx).await {
            Ok(true) => {}
            Ok(false) => return Err(AttemptError::ClientGone),
            Err(e) => return Err(AttemptError::failed(e)),
        }
        // Blocked before anything was sent: the client gets the refusal as an error.
        relay.gate(ctx).await.map_err(AttemptError::Final)?;
    }
    let mut h = sse_header(ctx);
    if !session.is_http2() {
        h.insert("transfer-encoding", "chunked");
    }
    ctx.status = 200;
    if session.write_response_header(&h, false).await.is_err() {
        ctx.client_gone = true;
        return Ok(Answered::Complete);
    }
    // The client has the stream: no other attempt can follow.
    plan.forget_request();
    let _active = ActiveStream::new(&gw.metrics);
    match pump(&mut relay, session, ctx).await {
        Pumped::ClientGone => Ok(Answered::Complete),
        // Boxed: its state (the error event, draining and releasing the connection) would
        // otherwise be reserved for the whole stream in the request's future.
        Pumped::Ended(failure) => Ok(Box::pin(finish(relay, session, ctx, failure, peer)).await),
        Pumped::Blocked(e) => {
            record_stream(ctx, relay.translator.as_ref());
            // The provider's connection is dropped with the relay: it stops generating.
            let event = relay.translator.error_event(&e);
            if session
                .write_response_body(Some(event), true)
                .await
                .is_err()
            {
                ctx.client_gone = true;
            }
            Ok(Answered::Complete)
        }
    }
}

/// How the committed part of a stream ended.
enum Pumped {
    /// The client left; it has been told, as far as it still listens.
    ClientGone,
    /// The answer is complete, or failed with this error.
    Ended(Option<ApiError>),
    /// An output webhook blocked the answer: it ends with this error event.
    Blocked(ApiError),
}

/// Sends what is translated and reads on, until the answer is complete or fails.
async fn pump(relay: &mut Relay<'_>, session: &mut Session<'_>, ctx: &mut Ctx) -> Pumped {
    let gaps = relay
        .gw
        .metrics
        .chunk_gap
        .with_label_values(&[relay.provider.name.as_str()]);
    let mut last_chunk = Instant::now();
    loop {
        if let Err(e) = relay.gate(ctx).await {
            return Pumped::Blocked(e);
        }
        if relay.translator.is_done() {
            // The answer is complete; whatever the provider does next is not the client's
            // concern.
            return Pumped::Ended(None);
        }
        if !relay.out.is_empty() {
            let data = relay.out.split().freeze();
            if session
                .write_response_body(Some(data), false)
                .await
                .is_err()
            {
                ctx.client_gone = true;
                record_stream(ctx, relay.translator.as_ref());
                return Pumped::ClientGone;
            }
        }
        match relay.step(session, ctx).await {
            Ok(true) => {
                let now = Instant::now();
                gaps.observe(now.duration_since(last_chunk).as_secs_f64());
                last_chunk = now;
            }
            Ok(false) => {
                ctx.client_gone = true;
                record_stream(ctx, relay.translator.as_ref());
                // A client that only half-closed may still read: it learns the answer was
                // cut, never a clean end. The connection is not reused.
                session.close_after();
                let event = relay.translator.error_event(&client_closed());
                let _ = session.write_response_body(Some(event), true).await;
                return Pumped::ClientGone;
            }
            Err(e) => return Pumped::Ended(Some(e)),
        }
    }
}

/// Ends a committed stream: the error event when it failed, the end of the body, and the
/// provider's connection returned to the pool, or closed when the answer was cut short.
async fn finish(
    mut relay: Relay<'_>,
    session: &mut Session<'_>,
    ctx: &mut Ctx,
    failure: Option<ApiError>,
    peer: &HttpPeer,
) -> Answered {
    record_stream(ctx, relay.translator.as_ref());
    let provider = relay.provider;
    // Whatever the provider wrote into its error goes out without its credential.
    let secret = provider.api_key.as_ref().map(|k| k.expose());
    let failure = failure.map(|e| e.from_provider(secret));
    if let Some(e) = &failure {
        log::warn!(
            "request {}: stream from provider '{}' failed: {}",
            ctx.request_id,
            provider.name,
            e.message
        );
        ctx.error = Some(e.origin.as_str());
        let event = relay.translator.error_event(e);
        relay.out.extend_from_slice(&event);
    }
    let data = relay.out.split().freeze();
    if session.write_response_body(Some(data), true).await.is_err() {
        ctx.client_gone = true;
    }
    if failure.is_some() {
        return Answered::StreamFailed;
    }
    if relay.translator.abandon_upstream() {
        // Dropping the session closes the connection (or resets the h2 stream): the
        // provider stops generating tokens nobody will read.
        drop(relay.up);
    } else {
        drain_and_release(relay.gw, relay.up, peer).await;
    }
    Answered::Complete
}
