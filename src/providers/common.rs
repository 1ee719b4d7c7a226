//! Building blocks the provider translators share: parameter refusals, message text, tool
//! calls, sampling options, and the OpenAI completion / chunk shapes they produce.

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::core::{ApiError, Usage};

/// A 400 for a parameter the provider cannot honour (see the parameter rule in each module).
pub(crate) fn unsupported(provider: &str, param: &str, why: &str) -> ApiError {
    ApiError::invalid_param(
        param,
        format!("'{param}' is not supported for this model's provider ({provider}): {why}."),
    )
    .with_code("unsupported_parameter")
}

/// A 400 for `n > 1`, for providers that return one choice per request.
pub(crate) fn refuse_n(provider: &str, body: &Map<String, Value>) -> Result<(), ApiError> {
    if body.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err(unsupported(
            provider,
            "n",
            "it returns one choice per request",
        ));
    }
    Ok(())
}

/// A 400 for audio output (`audio`, `modalities`), for providers served as text only.
pub(crate) fn refuse_audio(provider: &str, body: &Map<String, Value>) -> Result<(), ApiError> {
    for p in ["audio", "modalities"] {
        if body.contains_key(p) {
            return Err(unsupported(
                provider,
                p,
                "it answers in text only through this gateway",
            ));
        }
    }
    Ok(())
}

/// The text of OpenAI message content: a string, or the text parts joined by newlines.
pub(crate) fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The arguments of an assistant tool call (message `i`) as a JSON value; empty means `{}`.
pub(crate) fn tool_call_args(call: &Value, i: usize) -> Result<Value, ApiError> {
    let args = call
        .pointer("/function/arguments")
        .and_then(Value::as_str)
        .unwrap_or("{}");
    let args = if args.trim().is_empty() { "{}" } else { args };
    serde_json::from_str(args).map_err(|_| {
        ApiError::invalid_param(
            &format!("messages[{i}].tool_calls"),
            "function.arguments must be a JSON object encoded as a string",
        )
    })
}

/// The name of the function a `tool` message (message `i`) answers: looked up by its
/// `tool_call_id` among the earlier assistant calls (`(id, name)` pairs), else its `name`.
pub(crate) fn tool_name(
    calls: &[(String, String)],
    m: &Value,
    i: usize,
) -> Result<String, ApiError> {
    let id = m.get("tool_call_id").and_then(Value::as_str).unwrap_or("");
    calls
        .iter()
        .find(|(c, _)| c == id)
        .map(|(_, n)| n.clone())
        .or_else(|| m.get("name").and_then(Value::as_str).map(str::to_string))
        .ok_or_else(|| {
            ApiError::invalid_param(
                &format!("messages[{i}].tool_call_id"),
                format!(
                    "no earlier assistant tool call has the id {:?}",
                    crate::core::error::echo(id)
                ),
            )
        })
}

/// The error for a message whose role (message `i`) the provider has no equivalent of.
pub(crate) fn unknown_role(i: usize, role: &str) -> ApiError {
    ApiError::invalid_param(
        &format!("messages[{i}].role"),
        format!("unknown role {:?}", crate::core::error::echo(role)),
    )
}

/// The sampling parameters a provider shares with OpenAI, under its own names: `renames`
/// (OpenAI name → provider name), `max_completion_tokens` / `max_tokens` → `max_key`, and
/// `stop` (a string or a list) → `stop_key` as a list. Nulls are skipped.
pub(crate) fn sampling_options(
    body: &Map<String, Value>,
    renames: &[(&str, &str)],
    max_key: &str,
    stop_key: &str,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (from, to) in renames {
        if let Some(v) = body.get(*from).filter(|v| !v.is_null()) {
            out.insert((*to).into(), v.clone());
        }
    }
    if let Some(v) = body
        .get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .filter(|v| !v.is_null())
    {
        out.insert(max_key.into(), v.clone());
    }
    match body.get("stop") {
        Some(Value::String(s)) => {
            out.insert(stop_key.into(), Value::Array(vec![Value::from(s.as_str())]));
        }
        Some(Value::Array(a)) if !a.is_empty() => {
            out.insert(stop_key.into(), Value::Array(a.clone()));
        }
        _ => {}
    }
    out
}

/// A provider's answer body as JSON; a 502 when it is not.
pub(crate) fn parse_answer(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_gateway(format!(
            "The upstream provider returned a response that is not valid JSON ({e})."
        ))
    })
}

/// Seconds since the Unix epoch, for `created`.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A provider's embeddings answer (`body`, vectors under `embeddings`, each picked by
/// `vector`) → an OpenAI embeddings list; `prompt_tokens` when the provider counts them.
pub(crate) fn embeddings_list(
    body: &[u8],
    public_model: &str,
    vector: impl Fn(&Value) -> Value,
    prompt_tokens: impl Fn(&Value) -> Option<u64>,
) -> Result<(Bytes, Option<Usage>), ApiError> {
    let v = parse_answer(body)?;
    let embeddings = v
        .get("embeddings")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ApiError::bad_gateway("The upstream provider's answer has no 'embeddings'.")
        })?;
    let data: Vec<Value> = embeddings
        .iter()
        .enumerate()
        .map(
            |(i, e)| serde_json::json!({"object": "embedding", "index": i, "embedding": vector(e)}),
        )
        .collect();
    let prompt = prompt_tokens(&v);
    let n = prompt.unwrap_or(0);
    let out = serde_json::json!({"object": "list", "data": data, "model": public_model,
                                 "usage": {"prompt_tokens": n, "total_tokens": n}});
    let usage = prompt.map(|p| Usage {
        prompt_tokens: p,
        total_tokens: p,
        ..Usage::default()
    });
    Ok((
        Bytes::from(serde_json::to_vec(&out).expect("JSON values serialise")),
        usage,
    ))
}

/// A chat completion built from translated choices.
pub(crate) fn completion(
    id: Value,
    public_model: &str,
    choices: Value,
    usage: Option<Usage>,
) -> (Bytes, Option<Usage>) {
    let mut out = serde_json::json!({
        "id": id,
        "object": "chat.completion",
        "created": unix_now(),
        "model": public_model,
        "choices": choices,
    });
    if let Some(u) = usage {
        out["usage"] = u.to_json();
    }
    (
        Bytes::from(serde_json::to_vec(&out).expect("JSON values serialise")),
        usage,
    )
}

/// A chat-completion chunk with one choice.
pub(crate) fn chunk(
    id: &str,
    created: u64,
    model: &str,
    delta: Value,
    finish: Option<&str>,
) -> Value {
    serde_json::json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
    })
}

/// The final usage chunk (no choices) of a stream whose client asked for usage.
pub(crate) fn usage_chunk(id: &str, created: u64, model: &str, usage: Usage) -> Value {
    serde_json::json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage.to_json(),
    })
}
