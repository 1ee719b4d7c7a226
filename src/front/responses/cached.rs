//! A Response in the chat form, for the response cache: the answer an OpenAI deployment gave
//! natively — whole, or as the `response.completed` event of its stream — as the chat
//! completion the cache keeps. Only what the chat form can give back is converted: text,
//! refusals and function calls of a completed (or length-cut) response; reasoning items,
//! annotations, built-in tool calls and every other item make it `None` (not cached).

use bytes::{Bytes, BytesMut};
use serde_json::{json, Map, Value};

use crate::core::sse::SseEvent;
use crate::core::{ApiError, SseEvents, SseInput, Usage};
use crate::providers::openai::completion_to_sse;

/// A Response object → a chat completion; `None` when it holds what that cannot.
pub fn to_chat_completion(response: &Value) -> Option<Value> {
    let finish = match (
        response.get("status").and_then(Value::as_str)?,
        response
            .pointer("/incomplete_details/reason")
            .and_then(Value::as_str),
    ) {
        ("completed", _) => "stop",
        ("incomplete", Some("max_output_tokens")) => "length",
        _ => return None,
    };
    let mut content: Option<String> = None;
    let mut refusal: Option<String> = None;
    let mut calls = Vec::new();
    for item in response.get("output")?.as_array()? {
        match item.get("type").and_then(Value::as_str)? {
            "message" => {
                for part in item.get("content")?.as_array()? {
                    let text = part.get("text").or_else(|| part.get("refusal"));
                    let text = text.and_then(Value::as_str)?;
                    let annotated = part
                        .get("annotations")
                        .and_then(Value::as_array)
                        .is_some_and(|a| !a.is_empty());
                    match part.get("type").and_then(Value::as_str)? {
                        "output_text" if !annotated => {
                            content.get_or_insert_with(String::new).push_str(text)
                        }
                        "refusal" => refusal.get_or_insert_with(String::new).push_str(text),
                        _ => return None,
                    }
                }
            }
            "function_call" => calls.push(json!({
                "id": item.get("call_id")?.as_str()?,
                "type": "function",
                "function": {
                    "name": item.get("name")?.as_str()?,
                    "arguments": item.get("arguments")?.as_str()?,
                },
            })),
            _ => return None,
        }
    }
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    message.insert("content".into(), content.map_or(Value::Null, Value::String));
    if let Some(r) = refusal {
        message.insert("refusal".into(), Value::String(r));
    }
    let finish = if calls.is_empty() {
        finish
    } else {
        message.insert("tool_calls".into(), Value::Array(calls));
        if finish == "stop" {
            "tool_calls"
        } else {
            finish
        }
    };
    let u = response.get("usage")?;
    let num = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let id = response.get("id").and_then(Value::as_str).unwrap_or("");
    Some(json!({
        "id": format!("chatcmpl-{}", id.strip_prefix("resp_").unwrap_or(id)),
        "object": "chat.completion",
        "created": response.get("created_at").cloned().unwrap_or(Value::Null),
        "model": response.get("model").cloned().unwrap_or(Value::Null),
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": num("/input_tokens"),
            "completion_tokens": num("/output_tokens"),
            "total_tokens": num("/total_tokens"),
            "prompt_tokens_details": {"cached_tokens": num("/input_tokens_details/cached_tokens")},
            "completion_tokens_details": {
                "reasoning_tokens": num("/output_tokens_details/reasoning_tokens"),
            },
        },
    }))
}

/// A whole native Response → the chat completion the cache keeps.
pub fn whole_as_chat(body: &[u8]) -> Option<Bytes> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let c = to_chat_completion(&v)?;
    serde_json::to_vec(&c).ok().map(Bytes::from)
}

/// A native Responses event stream → OpenAI chunks, for the cache's assembler: nothing until
/// `response.completed`, then the whole answer as chunks with usage and `[DONE]`. A stream
/// that fails or holds what the chat form cannot produces nothing.
pub struct ResponsesAsChunks {
    input: SseInput,
    public_model: String,
    done: bool,
}

impl ResponsesAsChunks {
    pub fn new(public_model: &str) -> Self {
        ResponsesAsChunks {
            input: SseInput::new(),
            public_model: public_model.to_string(),
            done: false,
        }
    }
}

impl SseEvents for ResponsesAsChunks {
    fn input(&mut self) -> &mut SseInput {
        &mut self.input
    }

    fn event(&mut self, ev: &SseEvent<'_>, out: &mut BytesMut) -> Result<(), ApiError> {
        let completed = ev.event == Some("response.completed")
            || (ev.event.is_none() && ev.data.starts_with(b"{\"type\":\"response.completed\""));
        if !completed {
            return Ok(());
        }
        self.done = true;
        let chunks = serde_json::from_slice::<Value>(ev.data)
            .ok()
            .and_then(|v| to_chat_completion(v.get("response")?))
            .and_then(|c| serde_json::to_vec(&c).ok())
            .and_then(|c| completion_to_sse(&c, &self.public_model, true).ok());
        if let Some((sse, _)) = chunks {
            out.extend_from_slice(&sse);
        }
        Ok(())
    }

    fn done(&self) -> bool {
        self.done
    }

    fn usage_so_far(&self) -> Option<Usage> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(output: Value, status: &str) -> Value {
        json!({
            "id": "resp_abc", "object": "response", "created_at": 7, "status": status,
            "model": "m", "output": output,
            "incomplete_details": if status == "incomplete" { json!({"reason": "max_output_tokens"}) } else { Value::Null },
            "usage": {"input_tokens": 5, "input_tokens_details": {"cached_tokens": 1},
                      "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": 8},
        })
    }

    #[test]
    fn text_and_calls_convert() {
        let out = json!([
            {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": "Hi", "annotations": []}]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get",
             "arguments": "{}", "status": "completed"},
        ]);
        let c = to_chat_completion(&response(out, "completed")).unwrap();
        assert_eq!(c["id"], "chatcmpl-abc");
        assert_eq!(c["choices"][0]["message"]["content"], "Hi");
        assert_eq!(c["choices"][0]["message"]["tool_calls"][0]["id"], "call_1");
        assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(c["usage"]["total_tokens"], 8);
        assert_eq!(c["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
    }

    #[test]
    fn what_the_chat_form_cannot_hold_is_refused() {
        let reasoning = json!([{"type": "reasoning", "id": "rs_1", "summary": []}]);
        assert!(to_chat_completion(&response(reasoning, "completed")).is_none());
        let annotated = json!([{"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": "Hi", "annotations": [{"type": "url_citation"}]}]}]);
        assert!(to_chat_completion(&response(annotated, "completed")).is_none());
        let text = json!([{"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": "Hi", "annotations": []}]}]);
        assert!(to_chat_completion(&response(text.clone(), "failed")).is_none());
        let cut = to_chat_completion(&response(text, "incomplete")).unwrap();
        assert_eq!(cut["choices"][0]["finish_reason"], "length");
    }
}
