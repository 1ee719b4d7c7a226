use super::*;
use crate::core::StreamTranslator;
use crate::front::ChatToResponsesStream;
use bytes::BytesMut;
use serde_json::{json, Map, Value};

fn chat(v: Value) -> Result<Map<String, Value>, ApiError> {
    to_chat(v.as_object().unwrap())
}

/// The events of a Responses stream as (name, data) pairs.
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

#[test]
fn string_input() {
    let r =
        chat(json!({"model": "m", "input": "hi", "store": false, "metadata": {"a": "b"}})).unwrap();
    assert_eq!(
        Value::Object(r),
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    );
}

#[test]
fn stream_asks_for_usage() {
    let r = chat(json!({"model": "m", "input": "hi", "stream": true})).unwrap();
    assert_eq!(r["stream_options"], json!({"include_usage": true}));
}

#[test]
fn stateless_and_unsupported_parameters_are_refused() {
    let cases = [
        (json!({"model": "m", "input": "x", "store": true}), "store"),
        (
            json!({"model": "m", "input": "x", "previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (
            json!({"model": "m", "input": "x", "conversation": {"id": "c"}}),
            "conversation",
        ),
        (
            json!({"model": "m", "input": "x", "background": true}),
            "background",
        ),
        (
            json!({"model": "m", "input": "x", "prompt": {"id": "p"}}),
            "prompt",
        ),
        (json!({"input": "x"}), "model"),
        (json!({"model": "m"}), "input"),
        (json!({"model": "m", "input": 3}), "input"),
        (
            json!({"model": "m", "input": "x", "instructions": 3}),
            "instructions",
        ),
        (
            json!({"model": "m", "input": "x", "max_output_tokens": -1}),
            "max_output_tokens",
        ),
        (
            json!({"model": "m", "input": "x", "tools": [{"type": "file_search"}]}),
            "tools[0]",
        ),
        (
            json!({"model": "m", "input": "x", "tools": [{"type": "function"}]}),
            "tools[0].name",
        ),
        (
            json!({"model": "m", "input": "x", "tool_choice": {"type": "web_search"}}),
            "tool_choice",
        ),
        (
            json!({"model": "m", "input": "x", "text": {"format": {"type": "json_schema"}}}),
            "text.format.name",
        ),
        (
            json!({"model": "m", "input": "x", "text": {"format": {"type": "yaml"}}}),
            "text.format",
        ),
        (
            json!({"model": "m", "input": [{"role": "tool", "content": "x"}]}),
            "input[0].role",
        ),
        (
            json!({"model": "m", "input": [{"type": "computer_call_output"}]}),
            "input[0]",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file"}]}]}),
            "input[0].content[0]",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image"}]}]}),
            "input[0].content[0].image_url",
        ),
        (
            json!({"model": "m", "input": [{"type": "function_call_output", "call_id": "c", "output": [{"type": "input_image", "image_url": "u"}]}]}),
            "input[0].output",
        ),
    ];
    for (body, param) in cases {
        let e = chat(body.clone()).unwrap_err();
        assert_eq!(e.status, 400, "{body}");
        assert_eq!(e.param.as_deref(), Some(param), "{body}");
    }
    let e = chat(json!({"model": "m", "input": "x", "store": true})).unwrap_err();
    assert!(e.message.contains("\"store\": false"), "{}", e.message);
    // Absent or false stateful parameters are fine.
    chat(
        json!({"model": "m", "input": "x", "store": false, "background": false,
        "previous_response_id": null, "conversation": null}),
    )
    .unwrap();
}

#[test]
fn hostile_shapes_never_panic() {
    let values = [
        json!(null),
        json!(1),
        json!("s"),
        json!([]),
        json!({}),
        json!([null, 1, "x", {"type": 5}, {"type": "function_call"}]),
    ];
    for v in &values {
        for key in ["input", "tools", "tool_choice", "text", "instructions"] {
            let mut body = json!({"model": "m", "input": "x"});
            body[key] = v.clone();
            let _ = chat(body);
        }
        let _ = chat(json!({"model": "m", "input": [{"role": "user", "content": [v]}]}));
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
fn response_object() {
    let body = json!({"id": "chatcmpl-9", "created": 1700000000, "choices": [{"message": {
        "content": null, "tool_calls": [{"id": "call_1", "function": {"name": "f", "arguments": "{}"}}]},
        "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12,
                  "prompt_tokens_details": {"cached_tokens": 4},
                  "completion_tokens_details": {"reasoning_tokens": 1}}});
    let v: Value =
        serde_json::from_slice(&from_chat_response(body.to_string().as_bytes(), "pub").unwrap())
            .unwrap();
    assert_eq!(v["id"], "resp_9");
    assert_eq!(v["created_at"], 1700000000);
    assert_eq!(v["status"], "completed");
    assert_eq!(
        v["output"],
        json!([{"id": "fc_9_0", "type": "function_call", "status": "completed", "arguments": "{}", "call_id": "call_1", "name": "f"}])
    );
    assert_eq!(v["usage"]["input_tokens"], 10);
    assert_eq!(v["usage"]["input_tokens_details"]["cached_tokens"], 4);
    assert_eq!(v["usage"]["output_tokens_details"]["reasoning_tokens"], 1);
    assert_eq!(
        status_of(Some("length")),
        ("incomplete", Some("max_output_tokens"))
    );
    assert_eq!(
        status_of(Some("content_filter")),
        ("incomplete", Some("content_filter"))
    );
    assert_eq!(status_of(Some("stop")), ("completed", None));
}

#[test]
fn stream_numbers_events_and_ends_with_completed() {
    let mut t = ChatToResponsesStream::new("pub");
    let mut out = BytesMut::new();
    let s = "data: {\"id\":\"chatcmpl-s\",\"created\":5,\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}]}\n\n\
             data: {\"id\":\"chatcmpl-s\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\n";
    t.feed(s.as_bytes(), &mut out).unwrap();
    assert!(t.is_done());
    let evs = events(&out);
    for (n, (name, data)) in evs.iter().enumerate() {
        assert_eq!(data["sequence_number"], n as u64);
        assert_eq!(&data["type"], name);
    }
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    let r = &evs.last().unwrap().1["response"];
    assert_eq!(r["id"], "resp_s");
    assert_eq!(r["output"][0]["content"][0]["text"], "Hi");
    assert_eq!(r["usage"]["total_tokens"], 4);
}

#[test]
fn error_after_events_is_numbered_and_fails_the_response() {
    let mut t = ChatToResponsesStream::new("pub");
    let mut out = BytesMut::new();
    t.feed(
        b"data: {\"id\":\"x\",\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n",
        &mut out,
    )
    .unwrap();
    let n = events(&out).len() as u64;
    let e = t.finish(&mut out).unwrap_err();
    let evs = events(&t.error_event(&e));
    assert_eq!(evs[0].0, "error");
    assert_eq!(evs[0].1["sequence_number"], n);
    assert_eq!(evs[0].1["code"], "upstream_stream_truncated");
    assert_eq!(evs[1].0, "response.failed");
    assert_eq!(evs[1].1["response"]["status"], "failed");
    assert_eq!(evs[1].1["response"]["error"]["code"], "server_error");

    let free = events(&error_event(&ApiError::missing_param("input")));
    assert_eq!(free[0].1["param"], "input");
    assert_eq!(free[0].1["sequence_number"], 0);
}

#[test]
fn arbitrary_bytes_never_panic() {
    for input in crate::front::hostile_streams(0x9e37_79b9_7f4a_7c15u64, "length") {
        let mut t = ChatToResponsesStream::new("pub");
        let mut out = BytesMut::new();
        let r = t.feed(&input, &mut out).and_then(|()| t.finish(&mut out));
        if let Err(e) = r {
            let _ = t.error_event(&e);
        }
    }
}
