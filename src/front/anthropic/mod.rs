//! The Anthropic Messages door (`POST /v1/messages`, `POST /v1/messages/count_tokens`):
//! the request → the chat form (`request.rs`), a whole chat completion and errors → Anthropic's
//! shapes (`answer.rs`), OpenAI chunks → Anthropic's event stream (`stream.rs`). Anthropic
//! deployments get the client's body as it is ([`crate::front::native`]).

mod answer;
mod cached;
mod request;
mod stream;

pub use answer::*;
pub use request::to_chat;
pub use stream::ChatToMessagesStream;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::door::{only, Decoded, Endpoint, FrontDoor, Route};
use super::native::{self, NativeMessagesStream};
use crate::core::{ApiError, StreamTranslator, Usage};
use crate::guardrails::text::{array, content, leaves, leaves_except, Visit, STRUCTURAL};
use crate::guardrails::InputApi;
use crate::providers::ProviderKind;

pub struct AnthropicDoor;

impl FrontDoor for AnthropicDoor {
    fn route(&self, method: &str, path: &str) -> Option<Result<Route, ApiError>> {
        let endpoint = match path {
            "/v1/messages" => Endpoint::Messages,
            "/v1/messages/count_tokens" => Endpoint::CountTokens,
            _ => return None,
        };
        Some(only(method, path, "POST", Route::Proxy(endpoint)))
    }

    fn decode(
        &self,
        endpoint: Endpoint,
        body: Map<String, Value>,
        _native_only: bool,
    ) -> Result<Decoded, ApiError> {
        if endpoint == Endpoint::Messages {
            return Ok((to_chat(&body)?, Some(body)));
        }
        // Token counting: only what routing and validation look at; the body itself goes
        // upstream as it is.
        let mut m = Map::new();
        for k in ["model", "messages"] {
            if let Some(v) = body.get(k) {
                m.insert(k.into(), v.clone());
            }
        }
        Ok((m, Some(body)))
    }

    fn input_api(&self, _endpoint: Endpoint) -> InputApi {
        INPUT
    }

    fn param_name(&self, _chat_param: &'static str) -> &'static str {
        "max_tokens"
    }

    fn native_for(&self, endpoint: Endpoint, kind: ProviderKind, output_guardrails: bool) -> bool {
        kind == ProviderKind::Anthropic && (endpoint == Endpoint::CountTokens || !output_guardrails)
    }

    fn native_path(&self, endpoint: Endpoint) -> &'static str {
        match endpoint {
            Endpoint::CountTokens => "/messages/count_tokens",
            _ => "/messages",
        }
    }

    fn native_whole(
        &self,
        endpoint: Endpoint,
        body: &[u8],
        public_model: &str,
        stream: bool,
    ) -> Option<Result<(Bytes, Option<Usage>), ApiError>> {
        if endpoint == Endpoint::CountTokens {
            return Some(Ok((Bytes::copy_from_slice(body), None)));
        }
        // A whole answer to a streamed request goes the translated way, to be encoded as the
        // event stream the client asked for.
        (!stream).then(|| native::response(body, public_model, false))
    }

    fn native_stream(&self, public_model: &str) -> Option<Box<dyn StreamTranslator>> {
        Some(Box::new(NativeMessagesStream::new(public_model)))
    }

    fn native_as_chat(&self, body: &[u8], public_model: &str) -> Option<Bytes> {
        cached::whole_as_chat(body, public_model)
    }

    fn native_stream_as_chunks(&self, public_model: &str) -> Option<Box<dyn StreamTranslator>> {
        Some(Box::new(cached::MessagesAsChunks::new(public_model)))
    }

    fn encode_whole(&self, completion: Bytes, public_model: &str) -> Result<Bytes, ApiError> {
        from_chat_response(&completion, public_model)
    }

    fn stream_encoder(&self, public_model: &str) -> Option<Box<dyn StreamTranslator>> {
        Some(Box::new(ChatToMessagesStream::new(public_model)))
    }

    fn error_body(&self, e: &ApiError) -> Bytes {
        error_body(e)
    }
}

/// Where input guardrails find the text of a Messages request: `system` (string or `text`
/// blocks), `messages[*].content` (string or blocks: `text`, `tool_use.input` string leaves,
/// `tool_result.content`, and every string but the structural ones of other blocks; images
/// are skipped).
pub const INPUT: InputApi = InputApi(input_text);

fn input_text(body: &mut Value, f: &mut Visit) {
    if let Some(s) = body.get_mut("system") {
        content(s, f);
    }
    for m in array(body, "messages") {
        match m.get_mut("content") {
            Some(Value::String(s)) => f(s),
            Some(Value::Array(blocks)) => {
                for b in blocks {
                    match b.get("type").and_then(Value::as_str) {
                        Some("tool_use") => {
                            if let Some(i) = b.get_mut("input") {
                                leaves(i, f);
                            }
                        }
                        Some("tool_result") => {
                            if let Some(c) = b.get_mut("content") {
                                content(c, f);
                            }
                        }
                        // Pixels are not text.
                        Some("image") => {}
                        // `text`, and whatever else a block carries (documents, search
                        // results, …): every string but the structural ones.
                        _ => leaves_except(b, STRUCTURAL, f),
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
