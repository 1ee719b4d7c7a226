//! The mock's Anthropic Messages API (`POST /v1/messages`), whole and streamed.

use serde_json::{json, Value};
use tokio::net::TcpStream;

use super::{
    model_of, prompt_tokens, reply_text, reply_words, send_events, send_whole, sse_event,
    Behaviour, Fault, Request, State,
};

/// The Anthropic Messages API: text, or a `tool_use` of the first tool when tools are given.
pub(super) async fn anthropic_messages(
    sock: &mut TcpStream,
    req: &Request,
    body: &Value,
    behaviour: &Behaviour,
    fault: Option<&Fault>,
    st: &State,
) -> std::io::Result<bool> {
    let version = req
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("anthropic-version") && !v.is_empty());
    if !version || body.get("max_tokens").and_then(Value::as_u64).is_none() {
        let b = json!({"type": "error", "error": {"type": "invalid_request_error", "message": "anthropic-version header and max_tokens are required"}});
        send_whole(sock, 400, "", b.to_string().as_bytes()).await?;
        return Ok(true);
    }
    let model = model_of(body);
    let text = reply_text(body, behaviour);
    let words = reply_words(&text);
    let tool = body
        .pointer("/tools/0/name")
        .and_then(Value::as_str)
        .map(str::to_string);
    let input_tokens = prompt_tokens(body);
    let stop = if tool.is_some() {
        "tool_use"
    } else {
        "end_turn"
    };
    if body.get("stream").and_then(Value::as_bool) != Some(true)
        || fault == Some(&Fault::IgnoreStream)
    {
        if fault == Some(&Fault::Garbage) {
            send_whole(sock, 200, "", b"<html>this is not json").await?;
            return Ok(true);
        }
        let mut content = vec![json!({"type": "text", "text": text})];
        if let Some(name) = &tool {
            content.push(json!({"type": "tool_use", "id": "toolu_mock_1", "name": name, "input": {"city": "Paris", "unit": "celsius"}}));
        }
        let b = json!({
            "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": words.len()}
        });
        send_whole(sock, 200, "", b.to_string().as_bytes()).await?;
        return Ok(true);
    }
    let ev = |name: &str, data: Value| sse_event(name, &data);
    let mut events = vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ev("ping", json!({"type": "ping"})),
    ];
    for w in &words {
        events.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}})));
    }
    events.push(ev(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    if let Some(name) = &tool {
        events.push(ev("content_block_start", json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_mock_1", "name": name, "input": {}}})));
        for part in ["{\"city\": \"Pa", "ris\", \"unit\"", ": \"celsius\"}"] {
            events.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": part}})));
        }
        events.push(ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ));
    }
    events.push(ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": words.len()}})));
    events.push(ev("message_stop", json!({"type": "message_stop"})));
    let error_event = ev(
        "error",
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    );
    send_events(sock, events, &error_event, behaviour, fault, st).await
}
