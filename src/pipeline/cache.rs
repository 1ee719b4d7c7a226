//! The response cache on the request path: looked up once the request is admitted (input
//! guardrails have run, limits have counted it), served in the client's API — whole, or
//! replayed as a stream — and stored once a live answer is complete and successful. The
//! client sees the outcome in `x-sluice-cache` (`hit`, `miss`, `bypass`); `Cache-Control:
//! no-cache` skips the lookup, `no-store` the storing.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value};

use super::decode::{Members, Request};
use super::relay::send_whole;
use crate::cache::assemble::Capture;
use crate::cache::key::KeyParts;
use crate::cache::{Cache, CacheKey};
use crate::core::{ApiError, Usage};
use crate::ctx::Ctx;
use crate::downstream::Session;
use crate::front::{Endpoint, Front};
use crate::pipeline::gateway::Gateway;
use crate::pipeline::keyring::Key;
use crate::providers::{openai, ProviderKind, Wire};

/// The response header that tells the client what the cache did.
pub const HEADER: &str = "x-sluice-cache";

/// What the lookup decided for the rest of the request.
#[derive(Default)]
pub(super) struct Lookup {
    /// The entry found.
    pub hit: Option<Bytes>,
    /// Where the answer is stored once complete; `None` when it is not.
    store: Option<(Arc<Cache>, CacheKey)>,
    /// Where the relay leaves the complete answer, when it is to be stored.
    pub capture: Option<Arc<Capture>>,
}

/// What the client's `Cache-Control` asks: (no lookup, no storing).
fn client_directives(session: &Session<'_>) -> (bool, bool) {
    let mut no_cache = false;
    let mut no_store = false;
    for v in session.header_values("cache-control") {
        for d in String::from_utf8_lossy(v).split(',') {
            let d = d.trim();
            no_cache |= d.eq_ignore_ascii_case("no-cache");
            no_store |= d.eq_ignore_ascii_case("no-store");
        }
    }
    (no_cache, no_store)
}

/// Records the outcome: the response header, the metric, the context.
fn outcome(cache: &Cache, ctx: &mut Ctx, result: &'static str) {
    cache.metrics().lookups.with_label_values(&[result]).inc();
    ctx.cache = Some(result);
    if let Some(t) = ctx.trace.as_mut() {
        t.cache_hit = Some(result == "hit");
    }
    ctx.extra_headers.push((HEADER, result.to_string()));
}

fn endpoint_name(e: Endpoint) -> &'static str {
    match e {
        Endpoint::Chat => "chat",
        Endpoint::Embeddings => "embeddings",
        Endpoint::Messages => "messages",
        Endpoint::CountTokens => "count_tokens",
        Endpoint::Responses => "responses",
    }
}

fn api_name(f: Front) -> &'static str {
    match f {
        Front::OpenAi => "openai",
        Front::Anthropic => "anthropic",
        Front::Responses => "responses",
    }
}

/// Looks the request up. Nothing happens (no header) without `cache:`; the key's and the
/// model's settings, the client's `no-cache` and a failing backend make it a `bypass`.
pub(super) async fn lookup(
    gw: &Gateway,
    session: &Session<'_>,
    ctx: &mut Ctx,
    key: &Key,
    req: &Request,
) -> Lookup {
    let Some(cache) = gw.cache.clone() else {
        return Lookup::default();
    };
    let public = req.route.route.name.as_str();
    let scope = match &key.cache_scope {
        Some(s) if cache.covers(public) && !req.endpoint.passthrough_only() => s,
        _ => {
            outcome(&cache, ctx, "bypass");
            return Lookup::default();
        }
    };
    let (no_cache, no_store) = client_directives(session);
    let cache_key = KeyParts {
        api: api_name(ctx.front),
        endpoint: endpoint_name(req.endpoint),
        model: public,
        scope,
        policy: key.guardrails.fingerprint(),
        body: req.client.as_ref().unwrap_or(&req.chat),
    }
    .key();
    let (hit, result, store) = if no_cache {
        (None, "bypass", !no_store)
    } else {
        match cache.get(&cache_key).await {
            Ok(Some(entry)) => (Some(entry), "hit", false),
            Ok(None) => (None, "miss", !no_store),
            // The backend failed: the provider answers, and nothing is stored.
            Err(()) => (None, "bypass", false),
        }
    };
    outcome(&cache, ctx, result);
    Lookup {
        hit,
        capture: store.then(Capture::new),
        store: store.then_some((cache, cache_key)),
    }
}

/// Whether the client asked for usage in a stream (`stream_options.include_usage`).
pub(super) fn wants_usage(stream: bool, chat: &dyn Members) -> bool {
    stream
        && chat
            .member("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
}

/// A completion (or embeddings answer) in the client's API: the body, and whether it is an
/// event stream. A stream is synthesised from the completion and run through the client's
/// stream encoder, as live chunks are.
pub(super) fn render(
    front: Front,
    public: &str,
    (stream, wants_usage): (bool, bool),
    completion: Bytes,
) -> Result<(Bytes, Option<Usage>, bool), ApiError> {
    if !stream {
        return Ok((front.encode_whole(completion, public)?, None, false));
    }
    // Only OpenAI chat streams carry usage on request; the other APIs always do.
    let wants_usage = wants_usage || front != Front::OpenAi;
    let (sse, usage) = openai::completion_to_sse(&completion, public, wants_usage)?;
    if front == Front::OpenAi {
        return Ok((sse, usage, true));
    }
    let chunks = Wire::of(ProviderKind::OpenAi).stream(public, true);
    let mut encoder = front.encode_stream(chunks, public);
    let mut out = BytesMut::new();
    encoder.feed(&sse, &mut out)?;
    encoder.finish(&mut out)?;
    Ok((out.freeze(), usage, true))
}

/// Sends a cached answer; `false` (nothing sent, the outcome now a `miss`) when the entry
/// cannot be rendered — written by another version of sluice, say — and the provider is to
/// answer instead.
pub(super) async fn serve(
    session: &mut Session<'_>,
    ctx: &mut Ctx,
    req: &Request,
    entry: Bytes,
) -> bool {
    let public = req.route.route.name.as_str();
    let wants = wants_usage(req.stream, req.members());
    let (body, _, stream) = match render(ctx.front, public, (req.stream, wants), entry) {
        Ok(r) => r,
        Err(e) => {
            log::warn!(
                "request {}: a cached answer could not be rendered, asking the provider: {}",
                ctx.request_id,
                e.message
            );
            ctx.cache = Some("miss");
            for (name, value) in &mut ctx.extra_headers {
                if *name == HEADER {
                    *value = "miss".into();
                }
            }
            return false;
        }
    };
    // A hit costs no provider tokens.
    send_whole(session, ctx, body, Some(Usage::default()), stream).await;
    true
}

/// Stores the answer when it is complete and successful: the request succeeded, nothing
/// failed or was cut short, every choice finished (none by `content_filter`), and it fits
/// `cache.max_entry_bytes`.
pub(super) async fn store(ctx: &Ctx, lookup: Lookup, result: &Result<(), ApiError>) {
    let (Some((cache, key)), Some(capture)) = (lookup.store, lookup.capture) else {
        return;
    };
    let complete = result.is_ok()
        && ctx.error.is_none()
        && ctx.status == 200
        && !ctx.client_gone
        && ctx.usage_final;
    let Some(entry) = capture.take().filter(|_| complete) else {
        return;
    };
    let Some(entry) = storable(entry, ctx.usage) else {
        return;
    };
    if entry.len() <= cache.settings().max_entry_bytes {
        cache.put(key, entry).await;
    }
}

/// The entry as stored, with the provider's usage (a stream delivered without it has it
/// added); `None` when it is not a finished answer.
fn storable(entry: Bytes, usage: Option<Usage>) -> Option<Bytes> {
    let mut v: Map<String, Value> = serde_json::from_slice(&entry).ok()?;
    if let Some(choices) = v.get("choices") {
        let finished = choices.as_array()?.iter().all(|c| {
            c.get("finish_reason")
                .and_then(Value::as_str)
                .is_some_and(|r| r != "content_filter")
        });
        if !finished {
            return None;
        }
    }
    if v.get("usage").is_none_or(Value::is_null) {
        let u = usage?;
        v.insert(
            "usage".into(),
            serde_json::json!({
                "prompt_tokens": u.prompt_tokens,
                "completion_tokens": u.completion_tokens,
                "total_tokens": u.total_tokens,
            }),
        );
        return serde_json::to_vec(&v).ok().map(Bytes::from);
    }
    Some(entry)
}
