//! The answer side: a whole OpenAI completion, and errors, in this API's shape.

use bytes::{Bytes, BytesMut};
use serde_json::{json, Map, Value};

use crate::core::ApiError;
use crate::core::Usage;
use crate::front::{derive_id, first_choice, parse_object, str_at, usage_of};
use crate::providers::unix_now;

/// OpenAI `finish_reason` → the Response's `status` and `incomplete_details.reason`.
pub(crate) fn status_of(finish: Option<&str>) -> (&'static str, Option<&'static str>) {
    match finish {
        Some("length") => ("incomplete", Some("max_output_tokens")),
        Some("content_filter") => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

/// OpenAI usage → Responses usage (`input_tokens` includes the cached ones, as in OpenAI's).
pub(crate) fn usage_json(u: Usage, reasoning_tokens: u64) -> Value {
    json!({
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": u.total_tokens,
    })
}

/// `completion_tokens_details.reasoning_tokens` of a usage, or 0.
pub(crate) fn reasoning_tokens(obj: &Map<String, Value>) -> u64 {
    obj.get("usage")
        .and_then(|u| u.pointer("/completion_tokens_details/reasoning_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// A Response object. `usage` is `null` until known.
pub(crate) fn response_object(
    id: &str,
    created_at: u64,
    model: &str,
    status: &str,
    incomplete: Option<&str>,
    output: Vec<Value>,
    usage: Value,
) -> Value {
    json!({
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": false,
        "error": null,
        "incomplete_details": incomplete.map(|r| json!({"reason": r})),
        "instructions": null,
        "max_output_tokens": null,
        "model": model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "store": false,
        "temperature": null,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": null,
        "truncation": "disabled",
        "usage": usage,
        "user": null,
        "metadata": {},
    })
}

/// A `message` output item.
pub(crate) fn message_item(id: &str, status: &str, text: Option<&str>) -> Value {
    let content = match text {
        Some(t) => json!([{"type": "output_text", "text": t, "annotations": [], "logprobs": []}]),
        None => json!([]),
    };
    json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": content})
}

/// A `function_call` output item.
pub(crate) fn call_item(id: &str, call_id: &str, name: &str, args: &str, status: &str) -> Value {
    json!({"id": id, "type": "function_call", "status": status, "arguments": args, "call_id": call_id, "name": name})
}

/// A whole OpenAI chat completion → a Response object for `public_model`. Ids derive from
/// the completion id: `resp_<id>`, `msg_<id>`, `fc_<id>_<n>`; `call_id` is the tool-call id.
/// Request parameters are not echoed (the defaults are shown).
pub fn from_chat_response(openai_completion: &[u8], public_model: &str) -> Result<Bytes, ApiError> {
    let obj = parse_object(openai_completion)?;
    let choice = first_choice(&obj)
        .ok_or_else(|| ApiError::bad_gateway("The upstream provider's answer has no 'choices'."))?;
    let upstream_id = obj.get("id").and_then(Value::as_str);
    let rid = derive_id("resp_", upstream_id);
    let base = rid.trim_start_matches("resp_");
    let (status, incomplete) = status_of(choice.get("finish_reason").and_then(Value::as_str));
    let item_status = if status == "completed" {
        "completed"
    } else {
        "incomplete"
    };
    let msg = choice.get("message").unwrap_or(&Value::Null);
    let mut output = Vec::new();
    let text = crate::front::message_text(msg);
    if !text.is_empty() {
        output.push(message_item(
            &format!("msg_{base}"),
            item_status,
            Some(&text),
        ));
    }
    for (n, call) in msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let call_id = match str_at(call, "/id") {
            "" => format!("call_{base}_{n}"),
            id => id.to_string(),
        };
        output.push(call_item(
            &format!("fc_{base}_{n}"),
            &call_id,
            str_at(call, "/function/name"),
            str_at(call, "/function/arguments"),
            item_status,
        ));
    }
    let usage = usage_of(&obj).unwrap_or_default();
    let created = obj
        .get("created")
        .and_then(Value::as_u64)
        .unwrap_or_else(unix_now);
    let out = response_object(
        &rid,
        created,
        public_model,
        status,
        incomplete,
        output,
        usage_json(usage, reasoning_tokens(&obj)),
    );
    Ok(Bytes::from(
        serde_json::to_vec(&out).expect("JSON values serialise"),
    ))
}

/// The body of an error answer: the OpenAI shape, which the Responses API shares.
pub fn error_body(e: &ApiError) -> Bytes {
    e.body()
}

/// The error as a Responses stream `error` event with sequence number 0 (for a stream that
/// has sent nothing yet; [`ChatToResponsesStream::error_event`](super::ChatToResponsesStream::error_event)
/// numbers it after the events already sent).
pub fn error_event(e: &ApiError) -> Bytes {
    error_event_at(e, 0)
}

/// The `error` event with sequence number `seq`.
pub(crate) fn error_event_at(e: &ApiError, seq: u64) -> Bytes {
    let mut out = BytesMut::new();
    crate::front::write_named(
        &mut out,
        "error",
        &json!({
            "type": "error",
            "code": e.code,
            "message": e.message,
            "param": e.param,
            "sequence_number": seq,
        }),
    );
    out.freeze()
}
