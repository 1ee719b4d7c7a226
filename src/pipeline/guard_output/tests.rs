use super::*;
use crate::config::ProviderKind;
use crate::guardrails::{compile, RawGuardrail};
use crate::providers::Wire;
use std::sync::Arc;

const SECRET: &str = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789";

fn policy(action: &str) -> Arc<Policy> {
    let raw: Vec<RawGuardrail> = serde_yaml::from_str(&format!(
        "- {{ name: no-secrets, type: secrets, action: {action}, apply_to: [output] }}\n\
         - {{ name: pii, type: pii, action: redact, apply_to: [output] }}"
    ))
    .unwrap();
    compile(raw)
        .unwrap()
        .policy(&["no-secrets".into(), "pii".into()], "test")
        .unwrap()
}

/// An OpenAI stream whose content is `words`, with a usage chunk.
fn openai_stream(words: &[&str]) -> String {
    let mut s = String::new();
    let ev = |v: Value| format!("data: {v}\n\n");
    let base = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    };
    s += &ev(base(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    ));
    for w in words {
        s += &ev(base(json!({"content": w}), Value::Null));
    }
    s += &ev(base(json!({}), json!("stop")));
    s += &ev(
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}),
    );
    s + "data: [DONE]\n\n"
}

/// An Anthropic stream whose text deltas are `words`.
fn anthropic_stream(words: &[&str]) -> String {
    let ev = |name: &str, v: Value| format!("event: {name}\ndata: {v}\n\n");
    let mut s = ev(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "c", "usage": {"input_tokens": 3, "output_tokens": 1}}}),
    );
    s += &ev(
        "content_block_start",
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    );
    for w in words {
        s += &ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}),
        );
    }
    s += &ev(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    );
    s += &ev(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}}),
    );
    s + &ev("message_stop", json!({"type": "message_stop"}))
}

struct Run {
    out: String,
    text: String,
    finish: Option<String>,
    done: bool,
    abandon: bool,
    findings: Vec<Finding>,
}

fn run(kind: ProviderKind, policy: &Policy, pieces: &[&[u8]]) -> Run {
    let mut t = guarded(Wire::of(kind).stream("public", true), policy, None);
    let mut out = BytesMut::new();
    for p in pieces {
        t.feed(p, &mut out).unwrap();
    }
    t.finish(&mut out).unwrap();
    let out = String::from_utf8(out.to_vec()).unwrap();
    let mut text = String::new();
    let mut finish = None;
    for data in out.split("\n\n").filter_map(|e| e.strip_prefix("data: ")) {
        if data == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(data).unwrap();
        if let Some(c) = v
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
        {
            text += c;
        }
        if let Some(f) = v
            .pointer("/choices/0/finish_reason")
            .and_then(Value::as_str)
        {
            finish = Some(f.to_string());
        }
    }
    Run {
        done: out.ends_with("data: [DONE]\n\n"),
        abandon: t.abandon_upstream(),
        findings: t.findings(),
        out,
        text,
        finish,
    }
}

fn every_split(kind: ProviderKind, policy: &Policy, input: &str, check: impl Fn(&Run, usize)) {
    let bytes = input.as_bytes();
    for i in 0..=bytes.len() {
        let (a, b) = bytes.split_at(i);
        check(&run(kind, policy, &[a, b]), i);
    }
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    check(&run(kind, policy, &singles), usize::MAX);
}

#[test]
fn a_secret_split_anywhere_is_redacted_in_openai_and_anthropic_streams() {
    let p = policy("redact");
    let (a, b) = SECRET.split_at(11);
    let words = [
        "Your key is ",
        a,
        b,
        " and mail me at bob@example.com ",
        "thanks.",
    ];
    let want = "Your key is [REDACTED:openai_key] and mail me at [REDACTED:email] thanks.";
    for (kind, input) in [
        (ProviderKind::OpenAi, openai_stream(&words)),
        (ProviderKind::Anthropic, anthropic_stream(&words)),
    ] {
        every_split(kind, &p, &input, |r, i| {
            assert_eq!(r.text, want, "{kind:?} split {i}");
            assert!(!r.out.contains("AbCdEf"), "{kind:?} split {i}: {}", r.out);
            assert_eq!(r.finish.as_deref(), Some("stop"));
            assert!(r.done && !r.abandon);
            assert!(r.out.contains("\"usage\""), "the usage chunk survives");
        });
    }
}

#[test]
fn a_blocked_secret_ends_the_stream_with_content_filter() {
    let p = policy("block");
    let (a, b) = SECRET.split_at(20);
    let words = ["Here: ", a, b, " — and more text that must never arrive."];
    for (kind, input) in [
        (ProviderKind::OpenAi, openai_stream(&words)),
        (ProviderKind::Anthropic, anthropic_stream(&words)),
    ] {
        every_split(kind, &p, &input, |r, i| {
            assert_eq!(
                r.finish.as_deref(),
                Some("content_filter"),
                "{kind:?} split {i}"
            );
            assert!(r.done && r.abandon, "{kind:?} split {i}");
            assert!(!r.out.contains("sk-proj"), "{kind:?} split {i}: {}", r.out);
            assert!(!r.out.contains("never arrive"));
            assert_eq!(r.text, "Here: ");
            assert!(
                matches!(&r.findings[..], [Finding::Blocked { guardrail, .. }] if &**guardrail == "no-secrets")
            );
            // Every event before [DONE] is a well-formed chunk.
            let events: Vec<&str> = r.out.split("\n\n").filter(|e| !e.is_empty()).collect();
            assert_eq!(*events.last().unwrap(), "data: [DONE]");
            for e in &events[..events.len() - 1] {
                let v: Value = serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(v["object"], "chat.completion.chunk");
                assert_eq!(v["model"], "public");
            }
        });
    }
}

#[test]
fn prose_flows_through_with_the_chunk_that_carried_it() {
    let p = policy("redact");
    let input = openai_stream(&["The quick ", "brown fox ", "jumps."]);
    let mut t = guarded(
        Wire::of(ProviderKind::OpenAi).stream("public", false),
        &p,
        None,
    );
    let mut out = BytesMut::new();
    let bytes = input.as_bytes();
    let cut = input.find("brown").unwrap();
    t.feed(&bytes[..cut], &mut out).unwrap();
    let first = String::from_utf8(out.split().to_vec()).unwrap();
    assert!(first.contains("\"The quick \""), "{first}");
    t.feed(&bytes[cut..], &mut out).unwrap();
    t.finish(&mut out).unwrap();
    assert!(t.findings().is_empty());
}

#[test]
fn tool_call_arguments_are_scanned_too() {
    let p = policy("redact");
    let ev = |v: Value| format!("data: {v}\n\n");
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let args = format!("{{\"token\": \"{SECRET}\"}}");
    let (a, b) = args.split_at(20);
    let input = ev(chunk(
        json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
        Value::Null,
    )) + &ev(chunk(
        json!({"tool_calls": [{"index": 0, "function": {"arguments": a}}]}),
        Value::Null,
    )) + &ev(chunk(
        json!({"tool_calls": [{"index": 0, "function": {"arguments": b}}]}),
        Value::Null,
    )) + &ev(chunk(json!({}), json!("tool_calls")))
        + "data: [DONE]\n\n";
    every_split(ProviderKind::OpenAi, &p, &input, |r, i| {
        let mut got = String::new();
        for data in r.out.split("\n\n").filter_map(|e| e.strip_prefix("data: ")) {
            if let Ok(v) = serde_json::from_str::<Value>(data) {
                if let Some(s) = v
                    .pointer("/choices/0/delta/tool_calls/0/function/arguments")
                    .and_then(Value::as_str)
                {
                    got += s;
                }
            }
        }
        assert_eq!(got, "{\"token\": \"[REDACTED:openai_key]\"}", "split {i}");
        assert!(r.out.contains("\"id\":\"call_1\""));
        assert_eq!(r.finish.as_deref(), Some("tool_calls"));
    });
}

#[test]
fn whole_answers_are_redacted_or_blocked() {
    let body = json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("key {SECRET}")}, "finish_reason": "stop"}]});
    let bytes = serde_json::to_vec(&body).unwrap();
    let (out, findings) = guard_completion(&policy("redact"), &bytes);
    let v: Value = serde_json::from_slice(&out.unwrap()).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "key [REDACTED:openai_key]"
    );
    assert_eq!(findings.len(), 1);
    let (out, findings) = guard_completion(&policy("block"), &bytes);
    let v: Value = serde_json::from_slice(&out.unwrap()).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
    assert!(matches!(&findings[..], [Finding::Blocked { .. }]));
    let clean =
        serde_json::to_vec(&json!({"choices": [{"message": {"content": "hello"}}]})).unwrap();
    assert_eq!(guard_completion(&policy("block"), &clean), (None, vec![]));
}

/// Chunks of an OpenAI-wire stream, each `(delta, finish_reason)`.
fn raw_stream(chunks: &[(Value, Value)]) -> String {
    let mut s = String::new();
    for (delta, finish) in chunks {
        let c = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        s += &format!("data: {c}\n\n");
    }
    s + "data: [DONE]\n\n"
}

fn field_text(out: &str, field: &str) -> String {
    out.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v.pointer(&format!("/choices/0/delta/{field}"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn reasoning_and_refusals_are_scanned_like_content() {
    let (a, b) = SECRET.split_at(15);
    let input = raw_stream(&[
        (json!({"role": "assistant", "content": ""}), Value::Null),
        (
            json!({"reasoning_content": format!("the key {a}")}),
            Value::Null,
        ),
        (
            json!({"reasoning_content": b, "refusal": format!("no: {SECRET}")}),
            Value::Null,
        ),
        (json!({"reasoning": format!("again {SECRET}")}), Value::Null),
        (json!({"content": "done"}), json!("stop")),
    ]);
    every_split(ProviderKind::OpenAi, &policy("redact"), &input, |r, i| {
        assert!(!r.out.contains("AbCdEf"), "split {i}: {}", r.out);
        assert_eq!(
            field_text(&r.out, "reasoning_content"),
            "the key [REDACTED:openai_key]"
        );
        assert_eq!(field_text(&r.out, "refusal"), "no: [REDACTED:openai_key]");
        assert_eq!(
            field_text(&r.out, "reasoning"),
            "again [REDACTED:openai_key]"
        );
        assert_eq!(r.text, "done");
    });
    let r = run(ProviderKind::OpenAi, &policy("block"), &[input.as_bytes()]);
    assert_eq!(r.finish.as_deref(), Some("content_filter"));
    assert!(!r.out.contains("sk-proj"));

    let body = json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": [{"type": "text", "text": "ok"}],
        "reasoning_content": format!("k {SECRET}"), "refusal": SECRET}, "finish_reason": "stop"}]});
    let (out, _) = guard_completion(&policy("redact"), &serde_json::to_vec(&body).unwrap());
    let v: Value = serde_json::from_slice(&out.unwrap()).unwrap();
    let m = &v["choices"][0]["message"];
    assert_eq!(m["reasoning_content"], "k [REDACTED:openai_key]");
    assert_eq!(m["refusal"], "[REDACTED:openai_key]");
    assert_eq!(m["content"], "ok");
}

#[test]
fn text_in_the_finishing_chunk_keeps_its_order() {
    let input = raw_stream(&[
        (json!({"role": "assistant", "content": ""}), Value::Null),
        (json!({"content": "Call me at "}), Value::Null),
        (json!({"content": "tomorrow bob"}), json!("stop")),
    ]);
    every_split(ProviderKind::OpenAi, &policy("redact"), &input, |r, i| {
        assert_eq!(r.text, "Call me at tomorrow bob", "split {i}");
        assert_eq!(r.finish.as_deref(), Some("stop"));
        let last_chunk = r
            .out
            .split("\n\n")
            .filter(|e| e.starts_with("data: {"))
            .last()
            .unwrap();
        assert!(
            last_chunk.contains("\"finish_reason\":\"stop\""),
            "the finish comes last"
        );
    });
}
