//! Relaying an event stream to the client, translated chunk by chunk.

use std::time::Instant;

use bytes::BytesMut;
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;

use super::exchange::{drain_and_release, read_chunk, read_fail_error, ReadFail};
use super::{before_commit, provider_secret, Attempt, Deadline, Plan};
use crate::config::Provider;
use crate::core::ApiError;
use crate::core::StreamTranslator;
use crate::ctx::Ctx;
use crate::gateway::Gateway;
use crate::providers::Wire;
use crate::respond;

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

/// Records what the stream reported: usage, and what output guardrails did.
fn settle(ctx: &mut Ctx, translator: &dyn StreamTranslator) {
    ctx.usage = translator.usage();
    ctx.usage_final = translator.is_done();
    ctx.guardrails
        .extend(translator.findings().into_iter().map(|f| ("output", f)));
}

/// Bytes of a streamed answer so far, against `limits.max_stream_bytes`: an answer that
/// never ends cannot hold a stream (and what its translator keeps) forever.
struct StreamSize {
    seen: usize,
    max: usize,
}

impl StreamSize {
    fn new(max: usize) -> Self {
        StreamSize { seen: 0, max }
    }

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
pub(super) fn sse_header(ctx: &Ctx) -> pingora::http::ResponseHeader {
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
pub(super) async fn relay_stream(
    gw: &Gateway,
    session: &mut Session,
    ctx: &mut Ctx,
    plan: &Plan,
    provider: &Provider,
    (mut up, peer): (HttpSession, &HttpPeer),
    deadline: &Deadline,
) -> Attempt {
    let mut translator = plan.stream_translator(Wire::of(provider.kind));
    let mut out = BytesMut::with_capacity(4096);
    let mut watch = true;
    let idle = gw.cfg.timeouts.idle;
    let mut size = StreamSize::new(gw.cfg.limits.max_stream_bytes);

    while out.is_empty() && !translator.is_done() {
        match read_chunk(&mut up, session, &mut watch, deadline, idle).await {
            Ok(Some(chunk)) => {
                ctx.ttfb.get_or_insert_with(|| ctx.start.elapsed());
                if let Err(e) = size.add(chunk.len(), provider) {
                    return before_commit(e);
                }
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
                settle(ctx, translator.as_ref());
                return Attempt::Done;
            }
        }
        match read_chunk(&mut up, session, &mut watch, deadline, idle).await {
            Ok(Some(chunk)) => {
                let now = Instant::now();
                gaps.observe(now.duration_since(last_chunk).as_secs_f64());
                last_chunk = now;
                if let Err(e) = size.add(chunk.len(), provider) {
                    break Some(e);
                }
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
                settle(ctx, translator.as_ref());
                // A client that only half-closed may still read: it learns the answer was
                // cut, never a clean end. The connection is not reused.
                session.set_keepalive(None);
                let _ = session
                    .write_response_body(
                        Some(translator.error_event(&super::client_closed())),
                        true,
                    )
                    .await;
                return Attempt::Done;
            }
            Err(fail) => break Some(read_fail_error(fail, provider, ctx)),
        }
    };
    settle(ctx, translator.as_ref());
    // Whatever the provider wrote into its error goes out without its credential.
    let failure = failure.map(|e| e.from_provider(provider_secret(provider)));
    if let Some(e) = &failure {
        log::warn!(
            "request {}: stream from provider '{}' failed: {}",
            ctx.request_id,
            provider.name,
            e.message
        );
        ctx.error = Some(e.origin.as_str());
        out.extend_from_slice(&translator.error_event(e));
    }
    let data = out.split().freeze();
    if session.write_response_body(Some(data), true).await.is_err() {
        ctx.client_gone = true;
    }
    match failure {
        Some(_) => Attempt::StreamFailed,
        None if translator.abandon_upstream() => {
            // Dropping the session closes the connection (or resets the h2 stream): the
            // provider stops generating tokens nobody will read.
            drop(up);
            Attempt::Done
        }
        None => {
            drain_and_release(gw, up, peer).await;
            Attempt::Done
        }
    }
}
