use super::*;
use crate::core::StreamTranslator;

fn req(v: Value) -> Value {
    let body = v.as_object().unwrap().clone();
    serde_json::from_slice(&to_request(&body, "claude-x", false).unwrap()).unwrap()
}

#[test]
fn request_translation() {
    let r = req(json!({
        "model": "public",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "user", "content": [
                {"type": "text", "text": "And this picture"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"}
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "description": "Current weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "parallel_tool_calls": false,
        "temperature": 0.3,
        "stop": "END",
        "seed": 7,
        "user": "u-1"
    }));
    assert_eq!(r["model"], "claude-x");
    assert_eq!(r["max_tokens"], DEFAULT_MAX_TOKENS);
    assert_eq!(r["system"], "Be brief.\n\nUse metric units.");
    let msgs = r["messages"].as_array().unwrap();
    assert_eq!(
        msgs.len(),
        3,
        "user turns merged, tool result in a user turn: {r}"
    );
    assert_eq!(msgs[0]["role"], "user");
    let user = msgs[0]["content"].as_array().unwrap();
    assert_eq!(user.len(), 4);
    assert_eq!(
        user[2]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="})
    );
    assert_eq!(
        user[3]["source"],
        json!({"type": "url", "url": "https://example.com/cat.jpg"})
    );
    assert_eq!(
        msgs[1]["content"][0],
        json!({"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}})
    );
    assert_eq!(msgs[2]["role"], "user");
    assert_eq!(
        msgs[2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": "call_1", "content": "18C and sunny"})
    );
    assert_eq!(
        r["tools"][0]["input_schema"]["properties"]["city"]["type"],
        "string"
    );
    assert_eq!(
        r["tool_choice"],
        json!({"type": "tool", "name": "weather", "disable_parallel_tool_use": true})
    );
    assert_eq!(r["temperature"], 0.3);
    assert_eq!(r["stop_sequences"], json!(["END"]));
    assert_eq!(r["metadata"], json!({"user_id": "u-1"}));
    assert!(r.get("seed").is_none(), "harmless parameters are dropped");
    assert!(r.get("stream").is_none());

    let r = req(
        json!({"model": "m", "max_completion_tokens": 77, "messages": [{"role": "user", "content": "x"}], "tool_choice": "required", "tools": [{"type": "function", "function": {"name": "f"}}]}),
    );
    assert_eq!(r["max_tokens"], 77);
    assert_eq!(r["tool_choice"], json!({"type": "any"}));
    assert_eq!(r["tools"][0]["input_schema"]["type"], "object");
    let r = req(
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "none"}),
    );
    assert_eq!(r["tool_choice"], json!({"type": "none"}));
}

#[test]
fn parameters_that_would_change_the_answer_are_refused() {
    for (extra, param) in [
        (json!({"n": 2}), "n"),
        (json!({"logprobs": true}), "logprobs"),
        (
            json!({"response_format": {"type": "json_object"}}),
            "response_format",
        ),
        (json!({"modalities": ["audio"]}), "modalities"),
    ] {
        let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let e = to_request(body.as_object().unwrap(), "c", false).unwrap_err();
        assert_eq!((e.status, e.param.as_deref()), (400, Some(param)));
        assert_eq!(e.code.as_deref(), Some("unsupported_parameter"));
    }
    let bad_args = json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": "{not json"}}]}]});
    assert_eq!(
        to_request(bad_args.as_object().unwrap(), "c", false)
            .unwrap_err()
            .status,
        400
    );
}

#[test]
fn response_translation() {
    let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"Let me check."},{"type":"tool_use","id":"toolu_1","name":"weather","input":{"city":"Paris"}}],"stop_reason":"tool_use","usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":7}}"#;
    let (out, usage) = from_response(body, "public").unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "public");
    let m = &v["choices"][0]["message"];
    assert_eq!(m["content"], "Let me check.");
    assert_eq!(m["tool_calls"][0]["id"], "toolu_1");
    assert_eq!(
        m["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        usage.unwrap(),
        Usage {
            prompt_tokens: 15,
            completion_tokens: 7,
            total_tokens: 22,
            reasoning_tokens: 0,
            cached_tokens: 5,
        }
    );
    assert_eq!(v["usage"]["total_tokens"], 22);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 5);
    for (stop, finish) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content_filter"),
    ] {
        assert_eq!(finish_reason(stop), finish);
    }
    assert_eq!(from_response(b"{}", "p").unwrap_err().status, 502);
}

/// The streamed example from the Messages API documentation (text, then a tool call whose
/// input arrives in fragments), with a ping and CRLF line endings mixed in.
const STREAM: &str = concat!(
    "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_014p\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":472,\"output_tokens\":2}}}\r\n\r\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: ping\ndata: {\"type\": \"ping\"}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Okay, let me check — 東京\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01T1\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\":\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\" \\\"San Francisco, CA\\\"}\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
);

fn run(chunks: &[&[u8]], usage: bool) -> (String, Result<(), ApiError>) {
    let mut t = AnthropicStream::new("public", usage);
    t.created = 0;
    let mut out = BytesMut::new();
    for c in chunks {
        if let Err(e) = t.feed(c, &mut out) {
            return (String::from_utf8(out.to_vec()).unwrap(), Err(e));
        }
    }
    let r = t.finish(&mut out);
    (String::from_utf8(out.to_vec()).unwrap(), r)
}

fn events(s: &str) -> Vec<Value> {
    s.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let d = e.strip_prefix("data: ").unwrap();
            if d == "[DONE]" {
                Value::from("[DONE]")
            } else {
                serde_json::from_str(d).unwrap()
            }
        })
        .collect()
}

#[test]
fn stream_translation() {
    let (out, r) = run(&[STREAM.as_bytes()], true);
    r.unwrap();
    let evs = events(&out);
    let deltas: Vec<&Value> = evs
        .iter()
        .filter_map(|e| e.pointer("/choices/0/delta"))
        .collect();
    assert_eq!(deltas[0], &json!({"role": "assistant", "content": ""}));
    assert_eq!(deltas[1], &json!({"content": "Okay, let me check — 東京"}));
    assert_eq!(
        deltas[2],
        &json!({"tool_calls": [{"index": 0, "id": "toolu_01T1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]})
    );
    let args: String = deltas[3..]
        .iter()
        .filter_map(|d| {
            d.pointer("/tool_calls/0/function/arguments")
                .and_then(Value::as_str)
        })
        .collect();
    assert_eq!(args, "{\"location\": \"San Francisco, CA\"}");
    for d in &deltas[3..6] {
        assert_eq!(d.pointer("/tool_calls/0/index"), Some(&json!(0)));
        assert!(
            d.pointer("/tool_calls/0/id").is_none(),
            "only the first fragment carries the id"
        );
    }
    let finish = evs
        .iter()
        .find(|e| {
            e.pointer("/choices/0/finish_reason")
                .is_some_and(|f| !f.is_null())
        })
        .unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    let usage = &evs[evs.len() - 2];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 472, "completion_tokens": 89, "total_tokens": 561})
    );
    assert_eq!(evs.last().unwrap(), "[DONE]");
    for e in &evs[..evs.len() - 1] {
        assert_eq!(e["model"], "public");
        assert_eq!(e["id"], "msg_014p");
    }
    let (out, _) = run(&[STREAM.as_bytes()], false);
    assert!(!out.contains("\"usage\""), "no usage chunk unless asked");
}

#[test]
fn stream_output_is_identical_for_every_split() {
    let bytes = STREAM.as_bytes();
    let (whole, r) = run(&[bytes], true);
    r.unwrap();
    for i in 0..=bytes.len() {
        let (a, b) = bytes.split_at(i);
        assert_eq!(run(&[a, b], true).0, whole, "split at {i}");
    }
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(run(&singles, true).0, whole);
}

#[test]
fn stream_errors_and_truncation() {
    let cut = STREAM.find("event: message_delta").unwrap();
    let with_error = format!(
        "{}event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}}}\n\n",
        &STREAM[..cut]
    );
    let (out, r) = run(&[with_error.as_bytes()], false);
    let e = r.unwrap_err();
    assert_eq!((e.status, e.code.as_deref()), (503, Some("overloaded")));
    assert!(!out.contains("[DONE]"));
    let (out, r) = run(&[&STREAM.as_bytes()[..cut]], false);
    assert_eq!(
        r.unwrap_err().code.as_deref(),
        Some("upstream_stream_truncated")
    );
    assert!(!out.contains("[DONE]"));
    assert!(run(&[b"event: message_start\ndata: {oops\n\n"], false)
        .1
        .is_err());
}

#[test]
fn errors() {
    let p = "claude";
    let e = error(
        529,
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        p,
        None,
    );
    assert_eq!(
        (e.status, e.code.as_deref(), e.message.as_str()),
        (503, Some("overloaded"), "Overloaded")
    );
    let e = error(400, br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too large"}}"#, p, None);
    assert_eq!(
        (e.status, e.message.as_str()),
        (400, "max_tokens: too large")
    );
    assert_eq!(e.code.as_deref(), Some("invalid_request_error"));
    let e = error(401, br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#, p, None);
    assert_eq!(
        (e.status, e.code.as_deref()),
        (502, Some("upstream_auth_failed"))
    );
    let e = error(
        429,
        br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
        p,
        Some("3".into()),
    );
    assert_eq!((e.status, e.retry_after.as_deref()), (429, Some("3")));
}
