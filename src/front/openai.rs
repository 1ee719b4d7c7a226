//! The OpenAI door: chat completions, embeddings and the model list. Its requests are already
//! in the chat form and its answers are the OpenAI ones, so it translates nothing.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::door::{only, Decoded, Endpoint, FrontDoor, Route};
use crate::core::{ApiError, StreamTranslator};
use crate::guardrails::text::{array, content, get_str, json_string, Visit};
use crate::guardrails::InputApi;

pub struct OpenAiDoor;

impl FrontDoor for OpenAiDoor {
    fn route(&self, method: &str, path: &str) -> Option<Result<Route, ApiError>> {
        let endpoint = match path {
            "/v1/chat/completions" => Endpoint::Chat,
            "/v1/embeddings" => Endpoint::Embeddings,
            "/v1/models" => return Some(only(method, path, "GET", Route::ListModels)),
            p => {
                let id = p.strip_prefix("/v1/models/")?;
                return (method == "GET").then(|| Ok(Route::GetModel(id.to_string())));
            }
        };
        Some(only(method, path, "POST", Route::Proxy(endpoint)))
    }

    fn decode(
        &self,
        _endpoint: Endpoint,
        body: Map<String, Value>,
        _native_only: bool,
    ) -> Result<Decoded, ApiError> {
        Ok((body, None))
    }

    fn input_api(&self, endpoint: Endpoint) -> InputApi {
        match endpoint {
            Endpoint::Embeddings => EMBEDDINGS_INPUT,
            _ => CHAT_INPUT,
        }
    }

    fn encode_whole(&self, completion: Bytes, _public_model: &str) -> Result<Bytes, ApiError> {
        Ok(completion)
    }

    fn stream_encoder(&self, _public_model: &str) -> Option<Box<dyn StreamTranslator>> {
        None
    }
}

/// Where input guardrails find the text of a chat completions request:
/// `messages[*].content` (string or `text` parts) of every role, refusals, and tool-call
/// arguments (their string leaves when they are JSON).
pub const CHAT_INPUT: InputApi = InputApi(chat_text);

/// Where input guardrails find the text of an embeddings request: `input` as a string or an
/// array of strings (token arrays are not text and are skipped).
pub const EMBEDDINGS_INPUT: InputApi = InputApi(embeddings_text);

fn chat_text(body: &mut Value, f: &mut Visit) {
    for m in array(body, "messages") {
        if let Some(c) = m.get_mut("content") {
            content(c, f);
        }
        if let Some(r) = get_str(m, "refusal") {
            f(r);
        }
        for tc in array(m, "tool_calls") {
            if let Some(a) = tc.get_mut("function").and_then(|x| get_str(x, "arguments")) {
                json_string(a, f);
            }
        }
        if let Some(a) = m
            .get_mut("function_call")
            .and_then(|x| get_str(x, "arguments"))
        {
            json_string(a, f);
        }
    }
}

fn embeddings_text(body: &mut Value, f: &mut Visit) {
    match body.get_mut("input") {
        Some(Value::String(s)) => f(s),
        Some(Value::Array(items)) => {
            for i in items {
                if let Value::String(s) = i {
                    f(s);
                }
            }
        }
        _ => {}
    }
}
