//! The answer side: a whole OpenAI completion, and errors, in this API's shape.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::core::ApiError;
use crate::core::Usage;
use crate::front::{derive_id, first_choice, has_cached_field, parse_object, str_at, usage_of};

/// OpenAI `finish_reason` → Anthropic `stop_reason`. A `stop` is always `end_turn`: a chat
/// completion does not say whether a stop sequence ended it.
pub fn stop_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// OpenAI usage → Anthropic usage: `input_tokens` excludes the cached part, which is
/// `cache_read_input_tokens` (present when the upstream reported cached tokens).
pub(crate) fn usage_json(u: Usage, cached_field: bool) -> Value {
    let mut v = json!({
        "input_tokens": u.prompt_tokens.saturating_sub(u.cached_tokens),
        "output_tokens": u.completion_tokens,
    });
    if cached_field || u.cached_tokens > 0 {
        v["cache_read_input_tokens"] = Value::from(u.cached_tokens);
    }
    v
}

/// Tool-call arguments → a tool_use `input`: the parsed object, or `{}` when the arguments
/// are empty, not JSON or not an object (e.g. cut off by `max_tokens`).
pub(crate) fn tool_input(args: &str) -> Value {
    match serde_json::from_str::<Value>(args) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({}),
    }
}

/// A whole OpenAI chat completion → an Anthropic message for `public_model`. The id is
/// `msg_` + the completion id (without `chatcmpl-`); tool_use ids are the tool-call ids, so a
/// following `tool_result` finds its call upstream.
pub fn from_chat_response(openai_completion: &[u8], public_model: &str) -> Result<Bytes, ApiError> {
    let obj = parse_object(openai_completion)?;
    let choice = first_choice(&obj)
        .ok_or_else(|| ApiError::bad_gateway("The upstream provider's answer has no 'choices'."))?;
    let msg = choice.get("message").unwrap_or(&Value::Null);
    let mut content = Vec::new();
    let text = crate::front::message_text(msg);
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    for (n, call) in msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let id = match call.get("id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => format!("toolu_{n}"),
        };
        content.push(json!({
            "type": "tool_use",
            "id": id,
            "name": str_at(call, "/function/name"),
            "input": tool_input(str_at(call, "/function/arguments")),
        }));
    }
    let usage = usage_of(&obj).unwrap_or_default();
    let out = json!({
        "id": derive_id("msg_", obj.get("id").and_then(Value::as_str)),
        "type": "message",
        "role": "assistant",
        "model": public_model,
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason").and_then(Value::as_str)),
        "stop_sequence": null,
        "usage": usage_json(usage, has_cached_field(&obj)),
    });
    Ok(Bytes::from(
        serde_json::to_vec(&out).expect("JSON values serialise"),
    ))
}

/// Anthropic's error `type` for an HTTP status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

/// Anthropic's error objects have no `param`: like Anthropic's own messages, the message
/// starts with the parameter it is about (`max_tokens: ...`) unless it already names it.
fn error_json(e: &ApiError) -> Value {
    let message = match &e.param {
        Some(p) if !e.message.contains(p.as_str()) => format!("{p}: {}", e.message),
        _ => e.message.clone(),
    };
    json!({"type": "error", "error": {"type": error_type(e.status), "message": message}})
}

/// The body of an error answer in Anthropic's shape:
/// `{"type":"error","error":{"type","message"}}` (the HTTP status stays `e.status`).
pub fn error_body(e: &ApiError) -> Bytes {
    Bytes::from(serde_json::to_vec(&error_json(e)).expect("JSON values serialise"))
}

/// The error as Anthropic's final stream event (`event: error`); the stream ends after it.
pub fn error_event(e: &ApiError) -> Bytes {
    let mut out = bytes::BytesMut::new();
    crate::front::write_named(&mut out, "error", &error_json(e));
    out.freeze()
}
