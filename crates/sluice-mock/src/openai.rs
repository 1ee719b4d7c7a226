//! The mock's OpenAI API: chat completions (whole and streamed, with a tool call when tools
//! are given) and embeddings.

use serde_json::{json, Value};
use tokio::net::TcpStream;

use super::{
    error_body, first_tool, model_of, prompt_tokens, reply_text, reply_words, send_events,
    send_whole, tool_argument_deltas, Behaviour, Fault, State, CREATED, TOOL_ARGUMENTS,
};

pub(super) async fn whole_chat(
    sock: &mut TcpStream,
    body: &Value,
    behaviour: &Behaviour,
    fault: Option<&Fault>,
) -> std::io::Result<bool> {
    if fault == Some(&Fault::Garbage) {
        send_whole(sock, 200, "", b"<html>this is not json").await?;
        return Ok(true);
    }
    let b = chat_completion(body, behaviour);
    send_whole(sock, 200, "", b.to_string().as_bytes()).await?;
    Ok(true)
}

/// The mock's whole chat completion for `body`.
pub(super) fn chat_completion(body: &Value, behaviour: &Behaviour) -> Value {
    let text = reply_text(body, behaviour);
    let completion = reply_words(&text).len() as u64;
    let prompt = prompt_tokens(body);
    let mut message = json!({"role": "assistant", "content": text, "refusal": null});
    let mut finish = "stop";
    if let Some(name) = first_tool(body) {
        message["tool_calls"] = json!([{"id": "call_mock_1", "type": "function",
            "function": {"name": name, "arguments": TOOL_ARGUMENTS}}]);
        finish = "tool_calls";
    }
    json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": CREATED,
        "model": model_of(body),
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish
        }],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        "system_fingerprint": "fp_mock"
    })
}

fn chunk(model: &str, delta: Value, finish: Option<&str>, with_usage_null: bool) -> String {
    let mut c = json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "system_fingerprint": "fp_mock",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
    });
    if with_usage_null {
        c["usage"] = Value::Null;
    }
    format!("data: {c}\n\n")
}

pub(super) async fn stream_chat(
    sock: &mut TcpStream,
    body: &Value,
    behaviour: &Behaviour,
    fault: Option<&Fault>,
    st: &State,
) -> std::io::Result<bool> {
    let events = chat_events(body, behaviour);
    let error_event = format!(
        "data: {}\n\n",
        error_body(
            "The server had an error while processing your request.",
            "server_error",
            "server_error"
        )
    );
    send_events(sock, events, &error_event, behaviour, fault, st).await
}

/// The mock's streamed chat completion for `body`: one SSE event per string.
pub(super) fn chat_events(body: &Value, behaviour: &Behaviour) -> Vec<String> {
    let model = model_of(body);
    let usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    let text = reply_text(body, behaviour);
    let mut events: Vec<String> = Vec::new();
    events.push(chunk(
        &model,
        json!({"role": "assistant", "content": "", "refusal": null}),
        None,
        usage,
    ));
    let words = reply_words(&text);
    for w in &words {
        events.push(chunk(&model, json!({"content": w}), None, usage));
    }
    let mut finish = "stop";
    if let Some(name) = first_tool(body) {
        events.push(chunk(
            &model,
            json!({"tool_calls": [{"index": 0, "id": "call_mock_1", "type": "function",
                                   "function": {"name": name, "arguments": ""}}]}),
            None,
            usage,
        ));
        for part in tool_argument_deltas() {
            events.push(chunk(
                &model,
                json!({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}),
                None,
                usage,
            ));
        }
        finish = "tool_calls";
    }
    events.push(chunk(&model, json!({}), Some(finish), usage));
    if usage {
        let prompt = prompt_tokens(body);
        let completion = words.len() as u64;
        let u = json!({
            "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": CREATED,
            "model": model, "system_fingerprint": "fp_mock", "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        });
        events.push(format!("data: {u}\n\n"));
    }
    events.push("data: [DONE]\n\n".to_string());
    events
}

pub(super) async fn embeddings(
    sock: &mut TcpStream,
    body: &Value,
    fault: Option<&Fault>,
) -> std::io::Result<bool> {
    if fault == Some(&Fault::Garbage) {
        send_whole(sock, 200, "", b"not json").await?;
        return Ok(true);
    }
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::Array(a)) => a.iter().map(Value::to_string).collect(),
        Some(v) => vec![v.to_string()],
        None => vec![],
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let seed = s
                .bytes()
                .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
            let v: Vec<f64> = (0..8)
                .map(|k| f64::from((seed.rotate_left(k * 4) % 2000) as i32 - 1000) / 1000.0)
                .collect();
            json!({"object": "embedding", "index": i, "embedding": v})
        })
        .collect();
    let tokens: u64 = inputs
        .iter()
        .map(|s| s.split_whitespace().count() as u64)
        .sum();
    let b = json!({
        "object": "list",
        "data": data,
        "model": model_of(body),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
    });
    send_whole(sock, 200, "", b.to_string().as_bytes()).await?;
    Ok(true)
}
