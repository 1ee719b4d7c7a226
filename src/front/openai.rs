//! The OpenAI door: chat completions, embeddings and the model list. Its requests are already
//! in the chat form and its answers are the OpenAI ones, so it translates nothing.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::door::{only, Decoded, Endpoint, FrontDoor, Route};
use crate::core::{ApiError, StreamTranslator};
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
            Endpoint::Embeddings => InputApi::Embeddings,
            _ => InputApi::ChatCompletions,
        }
    }

    fn encode_whole(&self, completion: Bytes, _public_model: &str) -> Result<Bytes, ApiError> {
        Ok(completion)
    }

    fn stream_encoder(&self, _public_model: &str) -> Option<Box<dyn StreamTranslator>> {
        None
    }
}
