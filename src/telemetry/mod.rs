//! Telemetry of finished requests: the access log — one JSON line per request on stdout — and
//! the request-level metrics. Both carry names from the config (key name, model, provider),
//! statuses, timings and token counts — never bodies, keys or headers.

pub mod access;
pub mod audit;
mod line;
pub mod logger;
pub mod metrics;

use std::cell::RefCell;

use pingora::protocols::l4::socket::SocketAddr;
use pingora::Error;
use serde_json::json;

use crate::core::error::clip;
use crate::ctx::Ctx;
use crate::downstream::Session;
use line::Line;
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

/// Queues the access-log line of a finished request for stdout (see [`access`]): one JSON
/// object, its members in this order.
pub fn access_log(session: &Session<'_>, e: Option<&Error>, ctx: &Ctx) {
    thread_local! {
        static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|buf| {
        buf.clear();
        write_access_line(buf, session, e, ctx);
        buf.push(b'\n');
        access::push(buf);
        if buf.capacity() > 4096 {
            *buf = Vec::new();
        }
    });
}

fn write_access_line(buf: &mut Vec<u8>, session: &Session<'_>, e: Option<&Error>, ctx: &Ctx) {
    let mut line = Line::new(buf);
    line::timestamp(line.member("ts"), std::time::SystemTime::now());
    line.str("request_id", &ctx.request_id);
    line.str(
        "method",
        &clip(session.method().as_str(), MAX_LOGGED_METHOD),
    );
    let http = if session.is_http2() { "2" } else { "1.1" };
    line.str("http", http);
    match session.client_addr() {
        Some(SocketAddr::Inet(a)) => line.addr("client", a),
        Some(other) => line.str("client", &other.to_string()),
        None => line.opt_str("client", None),
    }
    line.str("path", &clip(session.uri().path(), MAX_LOGGED_PATH));
    line.num("status", status(ctx).into());
    line.opt_str("key", ctx.key_name.as_deref());
    line.opt_str("model", ctx.model.as_deref());
    line.opt_str("provider", ctx.provider.as_deref());
    line.opt_str("upstream_model", ctx.upstream_model.as_deref());
    line.opt_num("upstream_status", ctx.upstream_status.map(u64::from));
    line.num("attempts", ctx.attempts.into());
    line.bool("stream", ctx.stream);
    line.opt_str("error", ctx.error.or(e.map(|_| "internal")));
    line.bool("client_gone", ctx.client_gone);
    line.opt_num("ttfb_ms", ctx.ttfb.map(|d| d.as_millis() as u64));
    line.num("duration_ms", ctx.start.elapsed().as_millis() as u64);
    line.opt_num("prompt_tokens", ctx.usage.map(|u| u.prompt_tokens));
    line.opt_num("completion_tokens", ctx.usage.map(|u| u.completion_tokens));
    let guardrails = line.member("guardrails");
    match guardrail_log(ctx) {
        Some(g) => serde_json::to_writer(guardrails, &g).expect("a value serialises into memory"),
        None => guardrails.extend_from_slice(b"null"),
    }
    line.opt_str("cache", ctx.cache);
    line.end();
}
