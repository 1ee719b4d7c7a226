//! The OpenAI Responses door (`POST /v1/responses`, stateless): the request → the chat form
//! (`request.rs`), a whole chat completion → a Response (`answer.rs`), OpenAI chunks →
//! Responses events (`stream.rs`). When every deployment is OpenAI's, the client's body goes
//! upstream as it is ([`crate::front::native`]) and what only OpenAI can do (`store`,
//! `previous_response_id`, built-in tools) is its business.

mod answer;
mod cached;
mod request;
mod stream;

pub use answer::*;
pub use request::to_chat;
pub use stream::ChatToResponsesStream;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::door::{only, Decoded, Endpoint, FrontDoor, Route};
use super::native::{self, NativeResponsesStream};
use crate::core::{ApiError, StreamTranslator, Usage};
use crate::guardrails::text::{content, get_str, json_string, leaves_except, Visit, STRUCTURAL};
use crate::guardrails::InputApi;
use crate::providers::ProviderKind;

pub struct ResponsesDoor;

impl FrontDoor for ResponsesDoor {
    fn route(&self, method: &str, path: &str) -> Option<Result<Route, ApiError>> {
        (path == "/v1/responses")
            .then(|| only(method, path, "POST", Route::Proxy(Endpoint::Responses)))
    }

    fn decode(
        &self,
        _endpoint: Endpoint,
        body: Map<String, Value>,
        native_only: bool,
    ) -> Result<Decoded, ApiError> {
        if !native_only {
            return Ok((to_chat(&body)?, Some(body)));
        }
        // A stand-in carrying what validation, routing and limits read.
        let mut m = Map::new();
        for (from, to) in [
            ("model", "model"),
            ("stream", "stream"),
            ("max_output_tokens", "max_completion_tokens"),
        ] {
            if let Some(v) = body.get(from) {
                m.insert(to.into(), v.clone());
            }
        }
        m.insert(
            "messages".into(),
            serde_json::json!([{"role": "user", "content": ""}]),
        );
        Ok((m, Some(body)))
    }

    fn input_api(&self, _endpoint: Endpoint) -> InputApi {
        INPUT
    }

    fn param_name(&self, _chat_param: &'static str) -> &'static str {
        "max_output_tokens"
    }

    fn native_for(&self, _endpoint: Endpoint, kind: ProviderKind, output_guardrails: bool) -> bool {
        kind == ProviderKind::OpenAi && !output_guardrails
    }

    fn native_path(&self, _endpoint: Endpoint) -> &'static str {
        "/responses"
    }

    fn native_whole(
        &self,
        _endpoint: Endpoint,
        body: &[u8],
        public_model: &str,
        _stream: bool,
    ) -> Option<Result<(Bytes, Option<Usage>), ApiError>> {
        Some(native::response(body, public_model, true))
    }

    fn native_stream(&self, public_model: &str) -> Option<Box<dyn StreamTranslator>> {
        Some(Box::new(NativeResponsesStream::new(public_model)))
    }

    fn native_as_chat(&self, body: &[u8], _public_model: &str) -> Option<Bytes> {
        cached::whole_as_chat(body)
    }

    fn native_stream_as_chunks(&self, public_model: &str) -> Option<Box<dyn StreamTranslator>> {
        Some(Box::new(cached::ResponsesAsChunks::new(public_model)))
    }

    fn encode_whole(&self, completion: Bytes, public_model: &str) -> Result<Bytes, ApiError> {
        from_chat_response(&completion, public_model)
    }

    fn stream_encoder(&self, public_model: &str) -> Option<Box<dyn StreamTranslator>> {
        Some(Box::new(ChatToResponsesStream::new(public_model)))
    }
}

/// Where input guardrails find the text of a Responses request: `instructions`, `input`
/// (string or items: `content` string or `input_text`/`output_text` parts,
/// `function_call.arguments`, `function_call_output.output`, and every string but the
/// structural ones of other items).
pub const INPUT: InputApi = InputApi(input_text);

fn input_text(body: &mut Value, f: &mut Visit) {
    if let Some(s) = get_str(body, "instructions") {
        f(s);
    }
    match body.get_mut("input") {
        Some(Value::String(s)) => f(s),
        Some(Value::Array(items)) => {
            for it in items {
                match it.get("type").and_then(Value::as_str) {
                    Some("function_call") => {
                        if let Some(a) = get_str(it, "arguments") {
                            json_string(a, f);
                        }
                    }
                    Some("function_call_output") => match it.get_mut("output") {
                        Some(o @ Value::String(_)) | Some(o @ Value::Array(_)) => content(o, f),
                        _ => {}
                    },
                    None | Some("message") => {
                        if let Some(c) = it.get_mut("content") {
                            content(c, f);
                        }
                    }
                    // Other items (custom tool calls and outputs, reasoning summaries, …):
                    // every string but the structural ones.
                    Some(_) => leaves_except(it, STRUCTURAL, f),
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
