use std::time::Duration;

use super::*;
use crate::core::trace::AttemptTrace;
use crate::core::{Finding, Usage};

fn settings(ratio: f64) -> TracingSettings {
    TracingSettings {
        endpoint: crate::config::BaseUrl {
            tls: false,
            host: "127.0.0.1".into(),
            port: 4318,
            authority: "127.0.0.1:4318".into(),
            path: String::new(),
        },
        sample_ratio: ratio,
        headers: Vec::new(),
        service_name: "sluice".into(),
        timeout: Duration::from_secs(1),
    }
}

/// A request's trace fields: a `traceparent` and, with it, a `tracestate`.
fn start(tracer: &Tracer, traceparent: Option<&str>, ctx: &Ctx) -> RequestTrace {
    let state = traceparent.map(|_| "vendor=1");
    tracer.start(traceparent, state, "POST", ctx)
}

#[test]
fn a_clients_traceparent_decides_the_trace_and_sampling() {
    let tracer = Tracer::new(&settings(0.0));
    let ctx = Ctx::new();
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let t = start(&tracer, Some(tp), &ctx);
    assert!(t.sampled, "the client's sampled flag wins over the ratio");
    assert_eq!(hex::encode(t.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(
        t.parent.map(hex::encode).as_deref(),
        Some("00f067aa0ba902b7")
    );
    assert_eq!(t.tracestate.as_deref(), Some("vendor=1"));
    // No (or a malformed) traceparent: a new trace, sampled by the ratio.
    let t = start(&tracer, Some("00-zz-00f067aa0ba902b7-01"), &ctx);
    assert!(!t.sampled && t.parent.is_none() && t.tracestate.is_none());
    let t = start(&Tracer::new(&settings(1.0)), None, &ctx);
    assert!(t.sampled && t.parent.is_none());
}

#[test]
fn ratio_sampling_keeps_about_the_ratio() {
    let kept = (0..10_000)
        .filter(|_| ratio_sampled(&new_trace_id(), 0.25))
        .count();
    assert!((2000..3000).contains(&kept), "{kept}");
    assert!(!ratio_sampled(&new_trace_id(), 0.0));
}

#[test]
fn spans_carry_genai_attributes_and_no_text() {
    let tracer = Tracer::new(&settings(1.0));
    let mut ctx = Ctx::new();
    let mut t = start(&tracer, None, &ctx);
    t.operation = Some("chat");
    t.finish_reasons = vec!["stop".into()];
    t.attempts.push(AttemptTrace {
        span_id: new_span_id(),
        provider: "mock".into(),
        system: "openai",
        model: "upstream-gpt".into(),
        host: "127.0.0.1".into(),
        port: 9,
        start: Duration::from_millis(1),
        end: Duration::from_millis(5),
        status: Some(200),
        outcome: "success",
        error: None,
    });
    ctx.trace = Some(t);
    ctx.model = Some("gpt-4o-mini".into());
    ctx.provider = Some("mock".into());
    ctx.upstream_model = Some("upstream-gpt".into());
    ctx.usage = Some(Usage {
        prompt_tokens: 7,
        completion_tokens: 3,
        total_tokens: 10,
        ..Default::default()
    });
    ctx.guardrails.push((
        "input",
        Finding::Redacted {
            guardrail: "pii".into(),
            kinds: vec!["email".into()],
        },
    ));
    let spans = spans::build(ctx.trace.as_ref().unwrap(), &ctx, 200);
    assert_eq!(spans.len(), 2);
    let (req, attempt) = (&spans[0], &spans[1]);
    assert_eq!(req.name, "chat gpt-4o-mini");
    assert_eq!(req.kind, Kind::Server);
    assert_eq!(attempt.name, "chat upstream-gpt");
    assert_eq!(attempt.parent, Some(req.span_id));
    let attr = |s: &Span, k: &str| {
        s.attributes
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(attr(req, "gen_ai.usage.input_tokens"), Some(Value::Int(7)));
    assert_eq!(attr(req, "gen_ai.usage.output_tokens"), Some(Value::Int(3)));
    assert_eq!(
        attr(req, "gen_ai.provider.name"),
        Some(Value::Str("openai".into()))
    );
    assert_eq!(
        attr(req, "gen_ai.response.finish_reasons"),
        Some(Value::Strs(vec!["stop".into()]))
    );
    assert_eq!(
        attr(attempt, "sluice.attempt.outcome"),
        Some(Value::Str("success".into()))
    );
    assert_eq!(req.events.len(), 1);
    assert_eq!(req.events[0].name, "sluice.guardrail");
    let bytes = proto::export_request("sluice", &spans);
    assert!(bytes.windows(11).any(|w| w == b"gpt-4o-mini"));
}
