//! What the mock answers: the reply text (fixed, or an echo of the last user message), its
//! words as stream pieces, token counts, tool-call arguments and faults named in the prompt.

use serde_json::Value;

use super::*;

pub(crate) fn reply_text(body: &Value, behaviour: &Behaviour) -> String {
    if let Some(r) = &behaviour.reply {
        return r.clone();
    }
    if let Some(contents) = body.get("contents").and_then(Value::as_array) {
        let last_user = contents
            .iter()
            .rev()
            .find(|c| c.get("role").and_then(Value::as_str) == Some("user"))
            .and_then(|c| c.pointer("/parts/0/text"))
            .and_then(Value::as_str)
            .unwrap_or("");
        return echo(last_user);
    }
    let last_user = body
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| {
            m.iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
        .and_then(|m| m.get("content"))
        .map(|c| match c {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default();
    echo(&last_user)
}

/// The answer without a fixed reply: (the start of) the last user message, echoed.
pub(crate) fn echo(last_user: &str) -> String {
    let shown: String = last_user.chars().take(200).collect();
    format!("Hello from the sluice mock provider! You said: {shown}")
}

/// The answer as the mock streams it, one word (with its trailing space) per delta; each
/// word counts as one output token.
pub(crate) fn reply_words(text: &str) -> Vec<&str> {
    text.split_inclusive(' ').collect()
}

/// A fault asked for in the prompt itself, so that a client that cannot reach the mock's
/// controls (an SDK script, an external test) can still see one: a request whose body
/// contains `sluice-mock-fault:error-mid-stream` gets an error event after three events of
/// its stream; `sluice-mock-fault:garbage` gets a body that is not JSON.
pub(crate) fn prompt_fault(body: &[u8]) -> Option<Fault> {
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    if has(b"sluice-mock-fault:error-mid-stream") {
        Some(Fault::ErrorEventAfterChunks(3))
    } else if has(b"sluice-mock-fault:garbage") {
        Some(Fault::Garbage)
    } else {
        None
    }
}

/// The arguments of every tool call the mock makes.
pub(crate) const TOOL_ARGUMENTS: &str = r#"{"city":"Paris","unit":"celsius"}"#;

/// [`TOOL_ARGUMENTS`] as the two deltas a stream sends them in.
pub(crate) fn tool_argument_deltas() -> [&'static str; 2] {
    let (a, b) = TOOL_ARGUMENTS.split_at(9);
    [a, b]
}

/// The creation time of every answer (Unix seconds).
pub(crate) const CREATED: u64 = 1_700_000_000;

/// The name of the first function in an OpenAI-shaped `tools` list.
pub(crate) fn first_tool(body: &Value) -> Option<String> {
    body.pointer("/tools/0/function/name")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Input tokens: the whitespace-separated words of the conversation as JSON, at least one.
pub(crate) fn prompt_tokens(body: &Value) -> u64 {
    body.get("messages").map_or(0, words_in).max(1)
}

/// The whitespace-separated words of `v` as JSON.
pub(crate) fn words_in(v: &Value) -> u64 {
    v.to_string().split_whitespace().count() as u64
}

pub(crate) fn model_of(body: &Value) -> String {
    body.get("model")
        .and_then(Value::as_str)
        .unwrap_or("mock-model")
        .to_string()
}
