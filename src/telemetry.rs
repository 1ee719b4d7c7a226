//! Access log: one JSON line per request. It carries names from the config (key name, model,
//! provider), statuses, timings and token counts — never bodies, keys or headers.

use pingora::proxy::Session;
use pingora::Error;
use serde_json::json;

use crate::ctx::Ctx;

/// Logs one finished request at target `sluice::access`.
pub fn access_log(session: &Session, e: Option<&Error>, ctx: &Ctx) {
    let req = session.req_header();
    let status = if ctx.client_gone && ctx.status == 0 {
        499
    } else {
        ctx.status
    };
    let line = json!({
        "request_id": ctx.request_id,
        "method": req.method.as_str(),
        "http": if session.as_downstream().is_http2() { "2" } else { "1.1" },
        "client": session.client_addr().map(|a| a.to_string()),
        "path": req.uri.path(),
        "status": status,
        "key": ctx.key_name,
        "model": ctx.model,
        "provider": ctx.provider,
        "upstream_model": ctx.upstream_model,
        "upstream_status": ctx.upstream_status,
        "attempts": ctx.attempts,
        "stream": ctx.stream,
        "error": ctx.error.or(e.map(|_| "internal")),
        "client_gone": ctx.client_gone,
        "ttfb_ms": ctx.ttfb.map(|d| d.as_millis() as u64),
        "duration_ms": ctx.start.elapsed().as_millis() as u64,
        "prompt_tokens": ctx.usage.map(|u| u.prompt_tokens),
        "completion_tokens": ctx.usage.map(|u| u.completion_tokens),
    });
    log::info!(target: "sluice::access", "{line}");
}
