//! Client-facing APIs other than OpenAI chat completions. Each front door translates its
//! request into an OpenAI chat request (what the rest of sluice speaks), and the OpenAI
//! answer — a whole chat completion or a chat-completion-chunk SSE stream — back into its own
//! shape. Translation is pure: no sockets here.
//!
//! - [`anthropic`]: the Anthropic Messages API (`POST /v1/messages`).
//! - [`responses`]: the OpenAI Responses API (`POST /v1/responses`), stateless subset.
//!
//! The stream translators implement [`StreamTranslator`](crate::core::StreamTranslator):
//! `feed` takes the OpenAI chunk stream in any slices, `finish` is called when it ends. An
//! `Err` from either — an upstream error event, an event that is not JSON, a stream that ended
//! before `[DONE]` — is sent to the client with the front door's `error_event` and ends the
//! stream.

pub mod anthropic;
mod blocks;
pub mod door;
pub mod native;
pub mod openai;
pub mod responses;

pub use anthropic::ChatToMessagesStream;
pub use door::{passthrough_refusal, route, Endpoint, Front, FrontDoor, Route};
pub use responses::ChatToResponsesStream;

use serde_json::{Map, Value};

use crate::core::sse::SseEvent;
use crate::core::translate::bad_stream_event;
use crate::core::ApiError;
use crate::core::Usage;

/// The id sluice gives an object derived from an upstream completion id: `prefix` followed by
/// the upstream id without its `chatcmpl-` prefix (only `[A-Za-z0-9_-]` kept, at most 64
/// characters), or a random id when the upstream gave none.
pub(crate) fn derive_id(prefix: &str, upstream: Option<&str>) -> String {
    let base = upstream.unwrap_or("");
    let base = base.strip_prefix("chatcmpl-").unwrap_or(base);
    let kept: String = base
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(64)
        .collect();
    if kept.is_empty() {
        format!("{prefix}{:024x}", rand::random::<u128>() >> 32)
    } else {
        format!("{prefix}{kept}")
    }
}

pub(crate) use crate::core::sse::write_named;

/// The text of an answer's message: its content (a string, or text parts joined), else its
/// refusal.
pub(crate) fn message_text(msg: &Value) -> String {
    let text = match msg.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(parts @ Value::Array(_)) => crate::providers::text_of(parts),
        _ => String::new(),
    };
    if text.is_empty() {
        msg.get("refusal")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    } else {
        text
    }
}

/// A parsed upstream OpenAI chat completion (or chunk), as a JSON object; a 502 when it is not.
pub(crate) fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(ApiError::bad_gateway(
            "The upstream provider returned a JSON response that is not an object.",
        )),
        Err(e) => Err(ApiError::bad_gateway(format!(
            "The upstream provider returned a response that is not valid JSON ({e})."
        ))),
    }
}

/// An OpenAI `{"error": {...}}` event inside a stream → the error to send to the client. The
/// status (lost in the event) is inferred from the type and code, so that each front door can
/// map it to its own error type: rate limits → 429, `overloaded` → 503, invalid requests →
/// 400, anything else → 502.
pub(crate) fn stream_error(err: &Value) -> ApiError {
    let field = |k: &str| err.get(k).and_then(Value::as_str);
    let message = field("message")
        .or_else(|| err.as_str())
        .filter(|m| !m.is_empty())
        .unwrap_or("The upstream provider reported an error mid-stream.")
        .to_string();
    let code = field("code").map(str::to_string);
    let (status, kind) = match (field("type"), code.as_deref()) {
        (Some("rate_limit_error" | "tokens" | "requests"), _)
        | (_, Some("rate_limit_exceeded")) => (429, "rate_limit_error"),
        (_, Some("overloaded")) => (503, "api_error"),
        (Some("invalid_request_error"), _) => (400, "invalid_request_error"),
        _ => (502, "api_error"),
    };
    let mut e = ApiError::upstream(status, kind, message);
    e.code = code.or_else(|| Some("upstream_stream_error".into()));
    e.param = field("param").map(str::to_string);
    e
}

/// What one upstream SSE event carries.
pub(crate) enum Upstream {
    /// `data: [DONE]`.
    Done,
    /// A chat-completion chunk.
    Chunk(Map<String, Value>),
}

/// Reads one upstream event: `[DONE]`, a chunk, or an error (an error event, or data that is
/// not a JSON object).
pub(crate) fn read_event(ev: &SseEvent<'_>) -> Result<Upstream, ApiError> {
    let data = ev.data.trim_ascii();
    if data == b"[DONE]" {
        return Ok(Upstream::Done);
    }
    let v: Value = serde_json::from_slice(data).map_err(|_| bad_stream_event())?;
    let Value::Object(obj) = v else {
        return Err(bad_stream_event());
    };
    if let Some(err) = obj.get("error").filter(|e| !e.is_null()) {
        return Err(stream_error(err));
    }
    Ok(Upstream::Chunk(obj))
}

/// The usage of a completion or chunk, if it has one.
pub(crate) fn usage_of(obj: &Map<String, Value>) -> Option<Usage> {
    obj.get("usage").and_then(Usage::from_json)
}

/// Whether a `usage` object reports cached prompt tokens at all (even zero).
pub(crate) fn has_cached_field(obj: &Map<String, Value>) -> bool {
    obj.get("usage")
        .and_then(|u| u.pointer("/prompt_tokens_details/cached_tokens"))
        .is_some_and(Value::is_u64)
}

/// The first choice of a completion or chunk.
pub(crate) fn first_choice(obj: &Map<String, Value>) -> Option<&Value> {
    obj.get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
}

/// A string field of a JSON value, or `""`.
pub(crate) fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Test inputs for the stream encoders: 200 streams of 64 pieces of OpenAI-stream-like bytes
/// (fragments of events and JSON, invalid UTF-8, the given `finish_reason`), chosen by a
/// xorshift generator from `seed`.
#[cfg(test)]
pub(crate) fn hostile_streams(mut seed: u64, finish: &str) -> Vec<Vec<u8>> {
    let finish = format!("\"finish_reason\":\"{finish}\"");
    let pieces: [&[u8]; 8] = [
        b"data: ",
        b"\n\n",
        b"{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":",
        b"1}]}}]}",
        b"{\"content\":\"x\"}",
        b"[DONE]",
        b"\xff\r",
        finish.as_bytes(),
    ];
    (0..200)
        .map(|_| {
            let mut input = Vec::new();
            for _ in 0..64 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                input.extend_from_slice(pieces[(seed % 8) as usize]);
            }
            input
        })
        .collect()
}
