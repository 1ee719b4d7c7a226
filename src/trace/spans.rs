//! The spans of a finished request, built from its context: the request span (SERVER) with
//! the GenAI attributes and events, and one CLIENT span per upstream attempt. Names, ids,
//! counts and labels only — never prompt or answer text.

use std::time::Duration;

use super::{unix_nanos, Event, Kind, Span, Value};
use crate::core::trace::{AttemptTrace, RequestTrace};
use crate::ctx::Ctx;

/// `{gen_ai.operation.name} {model}`, the operation alone without a model, the HTTP method
/// before the operation was known.
fn span_name(trace: &RequestTrace, model: Option<&str>) -> String {
    match (trace.operation, model) {
        (Some(op), Some(m)) => format!("{op} {m}"),
        (Some(op), None) => op.to_string(),
        (None, _) => trace.method.clone(),
    }
}

fn s(v: &str) -> Value {
    Value::Str(v.to_string())
}

/// The request span and its attempts' spans.
pub(super) fn build(trace: &RequestTrace, ctx: &Ctx, status: u16) -> Vec<Span> {
    let elapsed = ctx.start.elapsed();
    let mut spans = Vec::with_capacity(1 + trace.attempts.len());
    spans.push(request_span(trace, ctx, status, elapsed));
    let answered = trace
        .attempts
        .iter()
        .rposition(|a| matches!(a.outcome, "success" | "stream_error"));
    for (i, a) in trace.attempts.iter().enumerate() {
        spans.push(attempt_span(trace, ctx, a, i, answered == Some(i)));
    }
    spans
}

fn request_span(trace: &RequestTrace, ctx: &Ctx, status: u16, elapsed: Duration) -> Span {
    let mut attrs: Vec<(&'static str, Value)> = Vec::with_capacity(24);
    if let Some(op) = trace.operation {
        attrs.push(("gen_ai.operation.name", s(op)));
    }
    if let Some(m) = &ctx.model {
        attrs.push(("gen_ai.request.model", s(m)));
    }
    if let Some(last) = trace.attempts.last() {
        attrs.push(("gen_ai.provider.name", s(last.system)));
    }
    answer_attributes(trace, ctx, &mut attrs);
    attrs.push(("http.response.status_code", Value::Int(i64::from(status))));
    attrs.push(("sluice.request_id", s(&ctx.request_id)));
    if let Some(k) = &ctx.key_name {
        attrs.push(("sluice.key", s(k)));
    }
    if let (Some(p), Some(m)) = (&ctx.provider, &ctx.upstream_model) {
        attrs.push(("sluice.deployment", Value::Str(format!("{p}/{m}"))));
    }
    attrs.push(("sluice.attempts", Value::Int(i64::from(ctx.attempts))));
    attrs.push(("sluice.failovers", Value::Int(i64::from(ctx.failovers))));
    if let Some(hit) = trace.cache_hit {
        attrs.push(("sluice.cache.hit", Value::Bool(hit)));
    }
    if let Some(limit) = &ctx.limit {
        attrs.push(("sluice.limit", s(limit)));
    }
    // A 5xx, or a stream that failed after its 200: the span is an error.
    let failed = status >= 500 || status == 0 || (status < 400 && ctx.error.is_some());
    let error = ctx
        .error
        .filter(|_| status >= 400 || failed)
        .map(str::to_string)
        .or_else(|| failed.then(|| status.to_string()));
    if let Some(e) = &error {
        attrs.push(("error.type", s(e)));
    }
    let start = unix_nanos(trace.start, Duration::ZERO);
    let end = unix_nanos(trace.start, elapsed);
    Span {
        trace_id: trace.trace_id,
        span_id: trace.span_id,
        parent: trace.parent,
        remote_parent: true,
        tracestate: trace.tracestate.clone(),
        name: span_name(trace, ctx.model.as_deref()),
        kind: Kind::Server,
        start,
        end,
        attributes: attrs,
        events: events(ctx, start, end),
        error: if failed { error } else { None },
    }
}

/// What the answer reported: model, tokens, finish reasons, time to the first chunk.
fn answer_attributes(trace: &RequestTrace, ctx: &Ctx, attrs: &mut Vec<(&'static str, Value)>) {
    if let Some(m) = &ctx.upstream_model {
        attrs.push(("gen_ai.response.model", s(m)));
    }
    if let Some(u) = ctx.usage {
        attrs.push((
            "gen_ai.usage.input_tokens",
            Value::Int(u.prompt_tokens as i64),
        ));
        attrs.push((
            "gen_ai.usage.output_tokens",
            Value::Int(u.completion_tokens as i64),
        ));
    }
    if !trace.finish_reasons.is_empty() {
        attrs.push((
            "gen_ai.response.finish_reasons",
            Value::Strs(trace.finish_reasons.clone()),
        ));
    }
    if ctx.stream {
        attrs.push(("gen_ai.request.stream", Value::Bool(true)));
        if let Some(t) = ctx.ttfb {
            attrs.push((
                "gen_ai.response.time_to_first_chunk",
                Value::F64(t.as_secs_f64()),
            ));
        }
    }
}

/// Guardrail actions (names, actions, kinds) and the limit that refused the request.
fn events(ctx: &Ctx, start: u64, end: u64) -> Vec<Event> {
    let mut events: Vec<Event> = ctx
        .guardrails
        .iter()
        .map(|(direction, f)| Event {
            time: if *direction == "input" { start } else { end },
            name: "sluice.guardrail",
            attributes: vec![
                ("sluice.guardrail.name", s(f.guardrail())),
                ("sluice.guardrail.action", s(f.action())),
                ("sluice.guardrail.direction", s(direction)),
                (
                    "sluice.guardrail.kinds",
                    Value::Strs(f.kinds().into_iter().map(str::to_string).collect()),
                ),
            ],
        })
        .collect();
    if let Some(limit) = &ctx.limit {
        events.push(Event {
            time: end,
            name: "sluice.limit.rejected",
            attributes: vec![("sluice.limit", s(limit))],
        });
    }
    events
}

fn attempt_span(
    trace: &RequestTrace,
    ctx: &Ctx,
    a: &AttemptTrace,
    index: usize,
    answered: bool,
) -> Span {
    let mut attrs: Vec<(&'static str, Value)> = Vec::with_capacity(20);
    if let Some(op) = trace.operation {
        attrs.push(("gen_ai.operation.name", s(op)));
    }
    attrs.push(("gen_ai.provider.name", s(a.system)));
    attrs.push(("gen_ai.request.model", s(&a.model)));
    attrs.push(("server.address", s(&a.host)));
    attrs.push(("server.port", Value::Int(i64::from(a.port))));
    if let Some(st) = a.status {
        attrs.push(("http.response.status_code", Value::Int(i64::from(st))));
    }
    if let Some(e) = &a.error {
        attrs.push(("error.type", s(e)));
    }
    attrs.push(("sluice.attempt", Value::Int(index as i64 + 1)));
    attrs.push(("sluice.attempt.outcome", s(a.outcome)));
    attrs.push(("sluice.provider", s(&a.provider)));
    attrs.push((
        "sluice.deployment",
        Value::Str(format!("{}/{}", a.provider, a.model)),
    ));
    if answered {
        answer_attributes(trace, ctx, &mut attrs);
    }
    let op = trace.operation.unwrap_or("chat");
    Span {
        trace_id: trace.trace_id,
        span_id: a.span_id,
        parent: Some(trace.span_id),
        remote_parent: false,
        tracestate: trace.tracestate.clone(),
        name: format!("{op} {}", a.model),
        kind: Kind::Client,
        start: unix_nanos(trace.start, a.start),
        end: unix_nanos(trace.start, a.end.max(a.start)),
        attributes: attrs,
        events: Vec::new(),
        error: a.error.clone(),
    }
}
