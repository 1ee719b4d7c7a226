//! Gemini embeddings (`batchEmbedContents`), translated to and from OpenAI embeddings.

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::core::{ApiError, Usage};
use crate::providers::{embeddings_list, unsupported};

/// The embeddings path (under the API root) for `model`.
pub fn embed_path(model: &str) -> String {
    format!("/models/{model}:batchEmbedContents")
}

/// An OpenAI embeddings request → `batchEmbedContents`.
pub fn to_embed_request(body: &Map<String, Value>, model: &str) -> Result<Bytes, ApiError> {
    let texts: Vec<&str> = match body.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            a.iter().filter_map(Value::as_str).collect()
        }
        _ => {
            return Err(unsupported(
                "Gemini",
                "input",
                "it embeds text: give a string or an array of strings",
            ))
        }
    };
    let dims = body.get("dimensions").and_then(Value::as_u64);
    let requests: Vec<Value> = texts
        .iter()
        .map(|t| {
            let mut r =
                json!({"model": format!("models/{model}"), "content": {"parts": [{"text": t}]}});
            if let Some(d) = dims {
                r["outputDimensionality"] = Value::from(d);
            }
            r
        })
        .collect();
    Ok(Bytes::from(
        serde_json::to_vec(&json!({"requests": requests})).expect("JSON values serialise"),
    ))
}

/// A `batchEmbedContents` answer → an OpenAI embeddings list (Gemini does not count the
/// tokens).
pub fn from_embed_response(
    body: &[u8],
    public_model: &str,
) -> Result<(Bytes, Option<Usage>), ApiError> {
    embeddings_list(
        body,
        public_model,
        |e| e.get("values").cloned().unwrap_or(json!([])),
        |_| None,
    )
}
