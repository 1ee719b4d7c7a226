use super::*;
use crate::config::ProviderKind;
use crate::core::StreamTranslator;
use serde_json::json;

const STREAM: &str = concat!(
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\r\n\r\n",
    ": keep-alive\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Grüße, \"},\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"世界 🌍\"},\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":4,\"total_tokens\":13}}\n\n",
    "data: [DONE]\n\n",
);

fn run(chunks: &[&[u8]], wants_usage: bool) -> (String, Result<(), ApiError>, Option<Usage>) {
    let mut t = OpenAiStream::new("public-model", wants_usage);
    let mut out = BytesMut::new();
    for c in chunks {
        if let Err(e) = t.feed(c, &mut out) {
            return (String::from_utf8(out.to_vec()).unwrap(), Err(e), t.usage());
        }
    }
    let r = t.finish(&mut out);
    (String::from_utf8(out.to_vec()).unwrap(), r, t.usage())
}

fn events(s: &str) -> Vec<Value> {
    s.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let d = e.strip_prefix("data: ").expect("data line");
            if d == "[DONE]" {
                Value::String("[DONE]".into())
            } else {
                serde_json::from_str(d).expect("JSON event")
            }
        })
        .collect()
}

#[test]
fn prepare_request_renames_and_forces_usage() {
    let mut b = json!({"model": "public", "messages": [], "stream": true, "stream_options": {"include_usage": false}})
        .as_object()
        .unwrap()
        .clone();
    let wants = prepare_request(&mut b, "upstream-model", true);
    assert!(!wants);
    assert_eq!(b["model"], "upstream-model");
    assert_eq!(b["stream_options"]["include_usage"], true);

    let mut b = json!({"model": "m", "stream_options": {"include_usage": true}})
        .as_object()
        .unwrap()
        .clone();
    assert!(prepare_request(&mut b, "u", true));

    let mut b = json!({"model": "m"}).as_object().unwrap().clone();
    assert!(!prepare_request(&mut b, "u", false));
    assert!(
        b.get("stream_options").is_none(),
        "non-streams are left alone"
    );
}

#[test]
fn stream_is_rewritten_and_usage_chunk_dropped_unless_asked() {
    let (out, r, usage) = run(&[STREAM.as_bytes()], false);
    r.unwrap();
    let evs = events(&out);
    assert_eq!(evs.len(), 5, "{out}");
    for e in &evs[..4] {
        assert_eq!(e["model"], "public-model");
        assert!(e.get("usage").is_none(), "usage: null removed: {e}");
    }
    assert_eq!(evs[1]["choices"][0]["delta"]["content"], "Grüße, ");
    assert_eq!(evs[3]["choices"][0]["finish_reason"], "stop");
    assert_eq!(evs[4], "[DONE]");
    assert_eq!(
        usage,
        Some(Usage {
            prompt_tokens: 9,
            completion_tokens: 4,
            total_tokens: 13,
            reasoning_tokens: 0,
            cached_tokens: 0,
        })
    );

    let (out, r, _) = run(&[STREAM.as_bytes()], true);
    r.unwrap();
    let evs = events(&out);
    assert_eq!(evs.len(), 6);
    assert_eq!(evs[4]["usage"]["total_tokens"], 13);
    assert_eq!(evs[4]["model"], "public-model");
}

#[test]
fn stream_output_is_identical_for_every_split() {
    let bytes = STREAM.as_bytes();
    let (whole, r, _) = run(&[bytes], true);
    r.unwrap();
    for i in 0..=bytes.len() {
        let (a, b) = bytes.split_at(i);
        let (out, r, _) = run(&[a, b], true);
        r.unwrap();
        assert_eq!(out, whole, "split at {i}");
    }
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(run(&singles, true).0, whole);
}

#[test]
fn truncated_stream_is_an_error_not_a_success() {
    let cut = STREAM.find("data: [DONE]").unwrap();
    let (out, r, _) = run(&[&STREAM.as_bytes()[..cut]], false);
    let e = r.unwrap_err();
    assert_eq!(e.code.as_deref(), Some("upstream_stream_truncated"));
    assert!(!out.contains("[DONE]"));
}

#[test]
fn error_event_and_garbage_end_the_stream() {
    let s = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n\
             data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n\
             data: [DONE]\n\n";
    let (out, r, _) = run(&[s.as_bytes()], false);
    let e = r.unwrap_err();
    assert_eq!(e.message, "overloaded");
    assert!(
        !out.contains("[DONE]"),
        "nothing after the error event: {out}"
    );

    let (_, r, _) = run(&[b"data: {not json\n\n"], false);
    assert_eq!(
        r.unwrap_err().code.as_deref(),
        Some("upstream_stream_error")
    );
    let (_, r, _) = run(&[b"data: [1,2]\n\n"], false);
    assert!(r.is_err());
}

#[test]
fn rewrite_whole_response() {
    let body = br#"{"id":"x","object":"chat.completion","model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}"#;
    let (out, usage) = rewrite_response(body, "public").unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["model"], "public");
    assert_eq!(v["id"], "x");
    assert_eq!(usage.unwrap().completion_tokens, 5);
    assert_eq!(rewrite_response(b"<html>", "p").unwrap_err().status, 502);
    assert_eq!(rewrite_response(b"[]", "p").unwrap_err().status, 502);
}

fn provider() -> &'static str {
    "acme"
}

#[test]
fn upstream_errors_are_normalised() {
    let p = provider();
    let e = upstream_error(
        400,
        br#"{"error":{"message":"bad temperature","type":"invalid_request_error","param":"temperature","code":"invalid_value"}}"#,
        p,
        None,
    );
    assert_eq!((e.status, e.kind), (400, "invalid_request_error"));
    assert_eq!(e.param.as_deref(), Some("temperature"));
    assert_eq!(e.code.as_deref(), Some("invalid_value"));
    assert_eq!(e.message, "bad temperature");

    let e = upstream_error(
        401,
        b"{\"error\":{\"message\":\"Incorrect API key provided: sk-fake-secret-provider-key-123\"}}",
        p,
        None,
    );
    assert_eq!(e.status, 502);
    assert!(!e.message.contains("sk-fake"), "{}", e.message);
    assert_eq!(e.code.as_deref(), Some("upstream_auth_failed"));

    let e = upstream_error(
        429,
        b"{\"error\":{\"message\":\"slow down, key sk-fake-secret-provider-key-123\"}}",
        p,
        Some("7".into()),
    )
    .from_provider(Some("sk-fake-secret-provider-key-123"));
    assert_eq!(e.status, 429);
    assert_eq!(e.retry_after.as_deref(), Some("7"));
    assert_eq!(e.code.as_deref(), Some("rate_limit_exceeded"));
    assert!(!e.message.contains("sk-fake"), "{}", e.message);

    let e = upstream_error(503, b"<html>busy</html>", p, None);
    assert_eq!(e.status, 503);
    assert!(e.message.contains("acme") && e.message.contains("503"));

    let e = upstream_error(404, br#"{"error":"model 'x' not found"}"#, p, None);
    assert_eq!((e.status, e.message.as_str()), (404, "model 'x' not found"));

    assert_eq!(upstream_error(529, b"", p, None).status, 503);
    assert_eq!(upstream_error(302, b"", p, None).status, 502);
    let long = format!("{{\"error\":{{\"message\":\"{}\"}}}}", "x".repeat(50_000));
    assert!(
        upstream_error(500, long.as_bytes(), p, None)
            .from_provider(None)
            .message
            .len()
            < 2100
    );
}

#[test]
fn whole_completion_becomes_a_stream() {
    let body = br#"{"id":"x","object":"chat.completion","created":5,"model":"up","choices":[{"index":0,"message":{"role":"assistant","content":"hi","tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#;
    let (out, usage) = completion_to_sse(body, "public", true).unwrap();
    let evs = events(std::str::from_utf8(&out).unwrap());
    assert_eq!(evs.len(), 4);
    assert_eq!(evs[0]["object"], "chat.completion.chunk");
    assert_eq!(evs[0]["model"], "public");
    assert_eq!(evs[0]["choices"][0]["delta"]["content"], "hi");
    assert_eq!(evs[0]["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
    assert_eq!(evs[1]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(evs[2]["usage"]["total_tokens"], 3);
    assert_eq!(evs[3], "[DONE]");
    assert_eq!(usage.unwrap().total_tokens, 3);
    let (out, _) = completion_to_sse(body, "public", false).unwrap();
    assert_eq!(events(std::str::from_utf8(&out).unwrap()).len(), 3);
    assert!(completion_to_sse(b"{}", "p", false).is_err());
}

#[test]
fn groq_and_xai_quirks() {
    let body = json!({"model": "p", "stream": true, "logit_bias": {"1": 2}, "messages": [{"role": "user", "name": "alice", "content": "hi"}]});
    let mut b = body.as_object().unwrap().clone();
    let out: Value =
        serde_json::from_slice(&render(ProviderKind::Groq, &mut b, "llama", true).unwrap())
            .unwrap();
    assert!(out.get("logit_bias").is_none());
    assert!(out["messages"][0].get("name").is_none());
    assert!(
        out.get("stream_options").is_none(),
        "Groq reports usage in x_groq"
    );
    assert_eq!(out["model"], "llama");
    assert_eq!(
        b["messages"][0]["name"], "alice",
        "the client's body is kept for other deployments"
    );

    for (extra, param) in [
        (json!({"n": 2}), "n"),
        (json!({"logprobs": true}), "logprobs"),
    ] {
        let mut b = body.as_object().unwrap().clone();
        b.extend(extra.as_object().unwrap().clone());
        let e = render(ProviderKind::Groq, &mut b, "llama", false).unwrap_err();
        assert_eq!((e.status, e.param.as_deref()), (400, Some(param)));
    }

    let x =
        json!({"model": "p", "presence_penalty": 0.5, "frequency_penalty": 0.1, "messages": []});
    let mut b = x.as_object().unwrap().clone();
    let out: Value =
        serde_json::from_slice(&render(ProviderKind::Xai, &mut b, "grok-4", false).unwrap())
            .unwrap();
    assert!(out.get("presence_penalty").is_none() && out.get("frequency_penalty").is_none());
    let mut b = x.as_object().unwrap().clone();
    let out: Value =
        serde_json::from_slice(&render(ProviderKind::Xai, &mut b, "grok-2", false).unwrap())
            .unwrap();
    assert_eq!(
        out["presence_penalty"], 0.5,
        "non-reasoning models keep them"
    );
    let mut b = x.as_object().unwrap().clone();
    b.insert("stop".into(), json!(["END"]));
    assert_eq!(
        render(ProviderKind::Xai, &mut b, "grok-3-mini", false)
            .unwrap_err()
            .param
            .as_deref(),
        Some("stop")
    );
}

#[test]
fn groq_usage_arrives_in_x_groq() {
    let s = "data: {\"id\":\"g\",\"model\":\"llama\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n\
             data: {\"id\":\"g\",\"model\":\"llama\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"x_groq\":{\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}}\n\n\
             data: [DONE]\n\n";
    let mut t = OpenAiStream::new("public", true);
    t.synthesize_usage_chunk = true;
    let mut out = BytesMut::new();
    t.feed(s.as_bytes(), &mut out).unwrap();
    t.finish(&mut out).unwrap();
    let evs = events(std::str::from_utf8(&out).unwrap());
    assert_eq!(evs[evs.len() - 2]["usage"]["total_tokens"], 4);
    assert_eq!(evs[evs.len() - 2]["choices"], json!([]));
    assert_eq!(evs.last().unwrap(), "[DONE]");
    assert_eq!(t.usage().unwrap().completion_tokens, 1);
}

/// The same events, each written over two `data:` lines: the relay's general path (a parse)
/// instead of the in-place one.
fn split_over_two_lines(stream: &str) -> String {
    stream
        .split_inclusive("\n\n")
        .map(|ev| match ev.strip_prefix("data: {") {
            Some(rest) => format!("data: {{\ndata: {rest}"),
            None => ev.to_string(),
        })
        .collect()
}

#[test]
fn chunks_relayed_in_place_equal_chunks_parsed() {
    // Members in any order, spaced or not, `usage` first, last, absent, null or an object,
    // `model` absent: the in-place relay gives what the parse gives.
    let odd = concat!(
        "data: {\"usage\": null, \"model\": \"m\", \"choices\": [{\"index\": 0, \"delta\": {\"content\": \"a\\nb\"}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}],\"usage\":null}\n\n",
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"model\":\"m\"}\n\n",
        "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{}}],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":1,\"total_tokens\":3}}\n\n",
        "data: { \"choices\" : [ ] , \"usage\" : {\"prompt_tokens\":9,\"completion_tokens\":4,\"total_tokens\":13} }\n\n",
        "data: [DONE]\n\n",
    );
    for stream in [STREAM, odd] {
        for wants_usage in [false, true] {
            let (fast, r1, u1) = run(&[stream.as_bytes()], wants_usage);
            let (parsed, r2, u2) = run(&[split_over_two_lines(stream).as_bytes()], wants_usage);
            assert!(r1.is_ok() && r2.is_ok());
            assert_eq!(events(&fast), events(&parsed), "{fast}\n{parsed}");
            if stream == odd {
                // Relayed in place: the provider's spacing is kept.
                let first = if wants_usage {
                    r#"data: {"usage": null, "model": "public-model", "choices": [{"index": 0"#
                } else {
                    r#"data: {"model": "public-model", "choices": [{"index": 0"#
                };
                assert!(fast.starts_with(first), "{fast}");
            }
            assert_eq!(u1, u2);
            assert_eq!(u1.unwrap().prompt_tokens, 9);
            for ev in events(&fast).iter().filter(|v| v.is_object()) {
                if ev.get("model").is_some() {
                    assert_eq!(ev["model"], "public-model", "{fast}");
                }
                if !wants_usage {
                    assert!(ev.get("usage").is_none(), "{fast}");
                }
            }
        }
    }
    // What is not valid JSON is refused on the in-place path as on the other.
    for bad in [
        &b"data: {\"model\":\"m\",\"choices\":[}\n\n"[..],
        b"data: {\"model\":\"m\",\"x\":\"\xff\"}\n\n",
        b"data: {\"model\":\"m\",\"x\":\"\\ud800\"}\n\n",
        b"data: {\"model\":\"m\"} trailing\n\n",
    ] {
        let (_, r, _) = run(&[bad], false);
        assert!(r.is_err(), "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn whole_responses_keep_the_providers_bytes_but_the_model() {
    let body = br#"{"id": "x", "model": "up-model", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}}"#;
    let (out, usage) = rewrite_response(body, "pub\"lic").unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"id": "x", "model": "pub\"lic", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}}"#
    );
    assert_eq!(usage.unwrap().total_tokens, 8);
    // No model: the body as it came; `\u` escapes and lone surrogates as a parse has them.
    let (out, _) = rewrite_response(br#"{"id":"x"}"#, "p").unwrap();
    assert_eq!(&out[..], br#"{"id":"x"}"#);
    let (out, _) = rewrite_response(br#"{"model":"m","c":"w\u00f6rld"}"#, "p").unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"model":"p","c":"wörld"}"#
    );
    assert_eq!(
        rewrite_response(br#"{"model":"m","c":"\ud800"}"#, "p")
            .unwrap_err()
            .status,
        502
    );
    assert_eq!(
        rewrite_response(b"{\"c\":\"\xff\"}", "p")
            .unwrap_err()
            .status,
        502
    );
    assert_eq!(
        rewrite_response(b"{\"c\":1} x", "p").unwrap_err().status,
        502
    );
}

/// A raw body as the request path keeps it: `model` and `stream_options` located.
fn raw_body(text: &str) -> RawBody {
    let text = Bytes::copy_from_slice(text.as_bytes());
    let [model, opts] = members::pick(&text, ["model", "stream_options"]).unwrap();
    let model = members::span(&text, model.unwrap());
    let stream_options = opts.map(|v| {
        (
            members::span(&text, v),
            serde_json::from_str(v.get()).unwrap(),
        )
    });
    RawBody {
        text,
        model,
        stream_options,
    }
}

#[test]
fn a_raw_body_goes_upstream_as_the_parsed_one_would() {
    let bodies = [
        r#"{"model":"public","messages":[{"role":"user","content":"hi"}]}"#,
        r#"{"messages":[{"role":"user","content":"hi"}],"model":"public"}"#,
        "{ \"model\" : \"public\" ,\n \"messages\": [ {\"role\": \"user\", \"content\": \"a \\\"quote\\\"\\n\"} ] ,\"stream\":true }  \n",
        r#"{"model":"public","stream":true,"stream_options":{"include_usage":false,"other":1},"messages":[]}"#,
        r#"{"model":"public","stream_options":null,"messages":[],"temperature":0.5}"#,
        r#"{"model":"public","stream_options":"odd","messages":[],"max_tokens":10}"#,
        r#"{"model":"public","input":["a","b"],"encoding_format":"float"}"#,
    ];
    for text in bodies {
        for stream in [false, true] {
            let raw = raw_body(text).render("up/model \"x\"", stream);
            let got: Value = serde_json::from_slice(&raw).unwrap_or_else(|e| {
                panic!(
                    "{text} (stream {stream}): {e}: {}",
                    String::from_utf8_lossy(&raw)
                )
            });
            let mut parsed: Map<String, Value> = serde_json::from_str(text).unwrap();
            let want: Value = serde_json::from_slice(
                &render(ProviderKind::OpenAi, &mut parsed, "up/model \"x\"", stream).unwrap(),
            )
            .unwrap();
            assert_eq!(got, want, "{text} (stream {stream})");
        }
    }
    // Every byte but the edited values is the client's: the prompt is copied, not rewritten.
    let text = "{\"model\":\"public\", \"messages\" : [ {\"content\":\"x  y\"} ] }";
    let raw = raw_body(text).render("m", false);
    assert_eq!(
        std::str::from_utf8(&raw).unwrap(),
        "{\"model\":\"m\", \"messages\" : [ {\"content\":\"x  y\"} ] }"
    );
}
