use super::*;
use crate::core::StreamTranslator;
use crate::front::ChatToMessagesStream;
use bytes::BytesMut;
use serde_json::{json, Map, Value};

fn chat(v: Value) -> Result<Map<String, Value>, ApiError> {
    to_chat(v.as_object().unwrap())
}

/// The events of an Anthropic stream as (name, data) pairs.
fn events(s: &[u8]) -> Vec<(String, Value)> {
    std::str::from_utf8(s)
        .unwrap()
        .split("\n\n")
        .filter(|b| !b.is_empty())
        .map(|b| {
            let (ev, data) = b.split_once('\n').unwrap();
            let name = ev.strip_prefix("event: ").unwrap().to_string();
            let data = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            (name, data)
        })
        .collect()
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    format!(
        "data: {}\n\n",
        json!({"id": "chatcmpl-t", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    )
}

fn usage_chunk(prompt: u64, cached: u64, completion: u64) -> String {
    format!(
        "data: {}\n\n",
        json!({"id": "chatcmpl-t", "choices": [], "usage": {
            "prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached}}})
    )
}

#[test]
fn minimal_request() {
    let r = chat(
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .unwrap();
    assert_eq!(
        Value::Object(r),
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
    );
}

#[test]
fn stream_asks_for_usage() {
    let r = chat(json!({"model": "m", "max_tokens": 5, "stream": true, "messages": []})).unwrap();
    assert_eq!(r["stream_options"], json!({"include_usage": true}));
}

#[test]
fn tool_choice_without_tools_is_dropped() {
    let r = chat(json!({"model": "m", "max_tokens": 5, "messages": [],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true}}))
    .unwrap();
    assert!(!r.contains_key("tool_choice"));
    assert!(!r.contains_key("parallel_tool_calls"));
}

#[test]
fn validation_names_the_parameter() {
    let cases = [
        (json!({"max_tokens": 5, "messages": []}), "model"),
        (json!({"model": "m", "messages": []}), "max_tokens"),
        (
            json!({"model": "m", "max_tokens": 0, "messages": []}),
            "max_tokens",
        ),
        (json!({"model": "m", "max_tokens": 5}), "messages"),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [], "temperature": "hot"}),
            "temperature",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [], "stop_sequences": "x"}),
            "stop_sequences",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [], "tools": [{"name": "f"}]}),
            "tools[0].input_schema",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [], "tools": [{"type": "bash_20250124", "name": "bash"}]}),
            "tools[0]",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [], "tools": [{"name": "f", "input_schema": {}}], "tool_choice": {"type": "tool"}}),
            "tool_choice.name",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": 7}]}),
            "messages[0].content",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64"}}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "assistant", "content": [{"type": "server_tool_use"}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "document"}]}]}]}),
            "messages[0].content[0].content[0]",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "system": [{"type": "image"}], "messages": []}),
            "system[0]",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "container": "c", "messages": []}),
            "container",
        ),
    ];
    for (body, param) in cases {
        let e = chat(body.clone()).unwrap_err();
        assert_eq!(e.status, 400, "{body}");
        assert_eq!(e.param.as_deref(), Some(param), "{body}");
        let v: Value = serde_json::from_slice(&error_body(&e)).unwrap();
        assert!(
            v["error"]["message"].as_str().unwrap().contains(param),
            "{v}"
        );
    }
}

#[test]
fn hostile_shapes_never_panic() {
    let values = [
        json!(null),
        json!(1),
        json!("s"),
        json!([]),
        json!({}),
        json!([null, 1, "x", {"type": 5}]),
        json!({"type": "text"}),
    ];
    for v in &values {
        for key in [
            "system",
            "messages",
            "tools",
            "tool_choice",
            "metadata",
            "stop_sequences",
        ] {
            let mut body = json!({"model": "m", "max_tokens": 5, "messages": []});
            body[key] = v.clone();
            let _ = chat(body);
            let mut body = json!({"model": "m", "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "tool_result"}]}]});
            body["messages"][0]["content"][0]["content"] = v.clone();
            let _ = chat(body);
            let body = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "assistant", "content": [v]}]});
            let _ = chat(body);
        }
        let _ = from_chat_response(v.to_string().as_bytes(), "p");
        let _ = from_chat_response(
            json!({"choices": [{"message": {"content": v, "tool_calls": [v]}, "finish_reason": v}], "usage": v})
                .to_string()
                .as_bytes(),
            "p",
        );
    }
}

#[test]
fn response_usage_excludes_cached_tokens() {
    let body = json!({"id": "chatcmpl-1", "choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107,
                  "prompt_tokens_details": {"cached_tokens": 60}}});
    let v: Value =
        serde_json::from_slice(&from_chat_response(body.to_string().as_bytes(), "pub").unwrap())
            .unwrap();
    assert_eq!(v["id"], "msg_1");
    assert_eq!(v["model"], "pub");
    assert_eq!(
        v["usage"],
        json!({"input_tokens": 40, "output_tokens": 7, "cache_read_input_tokens": 60})
    );
}

#[test]
fn response_without_id_or_text() {
    let body = json!({"choices": [{"message": {"content": "", "tool_calls": [
        {"function": {"name": "f", "arguments": "not json"}}]}, "finish_reason": "tool_calls"}]});
    let v: Value =
        serde_json::from_slice(&from_chat_response(body.to_string().as_bytes(), "p").unwrap())
            .unwrap();
    let id = v["id"].as_str().unwrap();
    assert!(id.starts_with("msg_") && id.len() == 28, "{id}");
    assert_eq!(
        v["content"],
        json!([{"type": "tool_use", "id": "toolu_0", "name": "f", "input": {}}])
    );
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["usage"], json!({"input_tokens": 0, "output_tokens": 0}));
}

#[test]
fn stop_reasons() {
    assert_eq!(stop_reason(Some("stop")), "end_turn");
    assert_eq!(stop_reason(None), "end_turn");
    assert_eq!(stop_reason(Some("length")), "max_tokens");
    assert_eq!(stop_reason(Some("tool_calls")), "tool_use");
    assert_eq!(stop_reason(Some("function_call")), "tool_use");
    assert_eq!(stop_reason(Some("content_filter")), "refusal");
}

#[test]
fn error_types_follow_the_status() {
    for (status, kind) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (405, "invalid_request_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ] {
        assert_eq!(error_type(status), kind, "{status}");
    }
    let e = ApiError::upstream(503, "api_error", "busy\nnow");
    let ev = error_event(&e);
    let s = std::str::from_utf8(&ev).unwrap();
    assert_eq!(
        s,
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\\nnow\"}}\n\n"
    );
}

#[test]
fn message_delta_waits_for_usage() {
    let mut t = ChatToMessagesStream::new("pub");
    let mut out = BytesMut::new();
    let head = chunk(json!({"role": "assistant", "content": "Hi"}), None)
        + &chunk(json!({}), Some("stop"));
    t.feed(head.as_bytes(), &mut out).unwrap();
    let evs = events(&out);
    assert!(evs.iter().all(|(n, _)| n != "message_delta"));
    assert_eq!(evs.last().unwrap().0, "content_block_stop");
    assert!(!t.is_done());
    out.clear();
    t.feed(usage_chunk(50, 20, 3).as_bytes(), &mut out).unwrap();
    assert!(t.is_done());
    let evs = events(&out);
    assert_eq!(evs[0].0, "message_delta");
    assert_eq!(
        evs[0].1["usage"],
        json!({"input_tokens": 30, "output_tokens": 3, "cache_read_input_tokens": 20})
    );
    assert_eq!(evs[1].0, "message_stop");
    // [DONE] and anything after the end add nothing.
    out.clear();
    t.feed(b"data: [DONE]\n\ndata: garbage\n\n", &mut out)
        .unwrap();
    assert!(out.is_empty());
    assert!(t.finish(&mut out).is_ok());
    assert_eq!(t.usage().unwrap().prompt_tokens, 50);
}

#[test]
fn usage_before_finish_and_done_without_usage() {
    let mut t = ChatToMessagesStream::new("pub");
    let mut out = BytesMut::new();
    let s =
        usage_chunk(5, 0, 1) + &chunk(json!({"content": "x"}), Some("length")) + "data: [DONE]\n\n";
    t.feed(s.as_bytes(), &mut out).unwrap();
    let evs = events(&out);
    assert_eq!(evs[0].1["message"]["usage"]["input_tokens"], 5);
    let delta = &evs[evs.len() - 2];
    assert_eq!(delta.1["delta"]["stop_reason"], "max_tokens");

    let mut t = ChatToMessagesStream::new("pub");
    let mut out = BytesMut::new();
    t.feed(b"data: [DONE]\n\n", &mut out).unwrap();
    let names: Vec<String> = events(&out).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["message_start", "ping", "message_delta", "message_stop"]
    );
}

#[test]
fn broken_streams_are_errors() {
    let mut t = ChatToMessagesStream::new("pub");
    let mut out = BytesMut::new();
    t.feed(
        chunk(json!({"content": "x"}), Some("stop")).as_bytes(),
        &mut out,
    )
    .unwrap();
    let e = t.finish(&mut out).unwrap_err();
    assert_eq!(e.code.as_deref(), Some("upstream_stream_truncated"));

    for (data, status, kind) in [
        (
            r#"{"error":{"message":"slow down","type":"rate_limit_error"}}"#,
            429,
            "rate_limit_error",
        ),
        (
            r#"{"error":{"message":"busy","code":"overloaded"}}"#,
            503,
            "overloaded_error",
        ),
        (
            r#"{"error":{"message":"bad","type":"invalid_request_error","param":"x"}}"#,
            400,
            "invalid_request_error",
        ),
        (r#"{"error":"plain"}"#, 502, "api_error"),
        ("[1,2]", 502, "api_error"),
        ("{nope", 502, "api_error"),
    ] {
        let mut t = ChatToMessagesStream::new("pub");
        let e = t
            .feed(format!("data: {data}\n\n").as_bytes(), &mut BytesMut::new())
            .unwrap_err();
        assert_eq!(e.status, status, "{data}");
        assert_eq!(error_type(e.status), kind, "{data}");
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    for input in crate::front::hostile_streams(0x2545_f491_4f6c_dd1du64, "stop") {
        let mut t = ChatToMessagesStream::new("pub");
        let mut out = BytesMut::new();
        if t.feed(&input, &mut out).is_ok() {
            let _ = t.finish(&mut out);
        }
    }
}
