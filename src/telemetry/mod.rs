//! Telemetry of finished requests: the access log — one JSON line per request on stdout — and
//! the request-level metrics. Both carry names from the config (key name, model, provider),
//! statuses, timings and token counts — never bodies, keys or headers.

pub mod access;
pub mod audit;
pub mod logger;
pub mod metrics;

use pingora::proxy::Session;
use pingora::Error;
use serde_json::json;

use crate::core::error::clip;
use crate::ctx::Ctx;
pub use metrics::Metrics;

/// Records a finished request in the metrics.
pub fn record(m: &Metrics, ctx: &Ctx) {
    let model = ctx.model.as_deref().unwrap_or("none");
    let key = ctx.key_name.as_deref().unwrap_or("none");
    let stream = if ctx.stream { "true" } else { "false" };
    let class = match status(ctx) {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    m.requests
        .with_label_values(&[model, key, class, stream])
        .inc();
    m.duration
        .with_label_values(&[model, stream])
        .observe(ctx.start.elapsed().as_secs_f64());
    for (direction, f) in &ctx.guardrails {
        m.guardrail_actions
            .with_label_values(&[f.guardrail(), f.action(), direction])
            .inc();
    }
    if let Some(provider) = ctx.provider.as_deref() {
        if let Some(t) = ctx.ttfb {
            m.ttft
                .with_label_values(&[model, provider])
                .observe(t.as_secs_f64());
        }
        if let Some(u) = ctx.usage {
            m.tokens
                .with_label_values(&[model, provider, key, "prompt"])
                .inc_by(u.prompt_tokens);
            m.tokens
                .with_label_values(&[model, provider, key, "completion"])
                .inc_by(u.completion_tokens);
        }
    }
}

/// The access-log form of what guardrails did: names, actions, kinds — never matched text.
fn guardrail_log(ctx: &Ctx) -> Option<serde_json::Value> {
    if ctx.guardrails.is_empty() {
        return None;
    }
    let entries = ctx
        .guardrails
        .iter()
        .map(|(direction, f)| {
            json!({"guardrail": f.guardrail(), "action": f.action(), "direction": direction, "kinds": f.kinds()})
        })
        .collect();
    Some(serde_json::Value::Array(entries))
}

/// The status the client saw: 499 when it left before any answer.
/// The status a request is counted with: 499 when the client left before any answer.
pub fn status(ctx: &Ctx) -> u16 {
    if ctx.client_gone && ctx.status == 0 {
        499
    } else {
        ctx.status
    }
}

/// The longest request path written to the access log, in bytes (client-controlled strings
/// are bounded so that one request cannot write a huge line).
const MAX_LOGGED_PATH: usize = 256;
/// The longest request method written to the access log, in bytes.
const MAX_LOGGED_METHOD: usize = 16;

/// One access-log line, in the order its fields are written.
#[derive(serde::Serialize)]
struct AccessLine<'a> {
    ts: String,
    request_id: &'a str,
    method: std::borrow::Cow<'a, str>,
    http: &'static str,
    client: Option<String>,
    path: std::borrow::Cow<'a, str>,
    status: u16,
    key: Option<&'a str>,
    model: Option<&'a str>,
    provider: Option<&'a str>,
    upstream_model: Option<&'a str>,
    upstream_status: Option<u16>,
    attempts: u32,
    stream: bool,
    error: Option<&'static str>,
    client_gone: bool,
    ttfb_ms: Option<u64>,
    duration_ms: u64,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    guardrails: Option<serde_json::Value>,
    cache: Option<&'static str>,
}

/// Queues the access-log line of a finished request for stdout (see [`access`]).
pub fn access_log(session: &Session, e: Option<&Error>, ctx: &Ctx) {
    let req = session.req_header();
    let line = AccessLine {
        ts: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        request_id: &ctx.request_id,
        method: clip(req.method.as_str(), MAX_LOGGED_METHOD),
        http: if session.as_downstream().is_http2() {
            "2"
        } else {
            "1.1"
        },
        client: session.client_addr().map(|a| a.to_string()),
        path: clip(req.uri.path(), MAX_LOGGED_PATH),
        status: status(ctx),
        key: ctx.key_name.as_deref(),
        model: ctx.model.as_deref(),
        provider: ctx.provider.as_deref(),
        upstream_model: ctx.upstream_model.as_deref(),
        upstream_status: ctx.upstream_status,
        attempts: ctx.attempts,
        stream: ctx.stream,
        error: ctx.error.or(e.map(|_| "internal")),
        client_gone: ctx.client_gone,
        ttfb_ms: ctx.ttfb.map(|d| d.as_millis() as u64),
        duration_ms: ctx.start.elapsed().as_millis() as u64,
        prompt_tokens: ctx.usage.map(|u| u.prompt_tokens),
        completion_tokens: ctx.usage.map(|u| u.completion_tokens),
        guardrails: guardrail_log(ctx),
        cache: ctx.cache,
    };
    let mut buf = Vec::with_capacity(512);
    if serde_json::to_writer(&mut buf, &line).is_err() {
        return;
    }
    buf.push(b'\n');
    access::push(&buf);
}
