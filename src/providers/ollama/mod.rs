//! Ollama's native API (`POST /api/chat`, NDJSON streams; `POST /api/embed`), translated to
//! and from OpenAI chat completions and embeddings.
//!
//! Parameter rule as for the other providers: what Ollama cannot honour and whose loss would
//! change the answer is a 400 naming the parameter — `n > 1`, `logprobs`, a `tool_choice`
//! of `required` or a named function, an image given by `https` URL (Ollama takes inline
//! images only, and sluice does not fetch URLs on a client's behalf), audio. `tool_choice:
//! "none"` is honoured by not sending the tools. `temperature`, `top_p`, `seed`, `stop`,
//! `max_tokens` / `max_completion_tokens` (→ `num_predict`), `presence_penalty` and
//! `frequency_penalty` go into `options`; `response_format` maps to `format` (`"json"` or the
//! JSON schema). The rest (`user`, `logit_bias`, `parallel_tool_calls`, `store`, `metadata`,
//! `service_tier`, …) is dropped.
//!
//! Ollama's answers have no id; sluice makes one up per answer.

use bytes::{Bytes, BytesMut};
use serde_json::{json, Map, Value};

use super::{
    chunk, completion, embeddings_list, parse_answer, refuse_audio, refuse_n, sampling_options,
    text_of, tool_call_args, tool_name, unix_now, unknown_role, unsupported, usage_chunk,
    Credential, Descriptor, ProviderWire,
};
use crate::core::ndjson::NdjsonParser;
use crate::core::sse::write_event;
use crate::core::translate::{bad_stream_event, feed_error, truncated_stream};
use crate::core::ApiError;
use crate::core::{StreamTranslator, Usage};

/// The chat path under the server root.
pub const CHAT_PATH: &str = "/api/chat";
/// The embeddings path under the server root.
pub const EMBED_PATH: &str = "/api/embed";
/// Ollama's stream content type.
pub const NDJSON: &str = "application/x-ndjson";

/// OpenAI content → Ollama's text plus base64 images.
fn content(content: &Value, i: usize) -> Result<(String, Vec<Value>), ApiError> {
    let parts = match content {
        Value::Array(parts) => parts,
        Value::Null => return Ok((String::new(), vec![])),
        Value::String(s) => return Ok((s.clone(), vec![])),
        _ => {
            return Err(ApiError::invalid_param(
                &format!("messages[{i}].content"),
                "content must be a string or an array of parts",
            ))
        }
    };
    let mut text: Vec<&str> = Vec::new();
    let mut images = Vec::new();
    for p in parts {
        match p.get("type").and_then(Value::as_str) {
            Some("text") => text.push(p.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("image_url") => {
                let url = p
                    .pointer("/image_url/url")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                match url.strip_prefix("data:").and_then(|r| r.split_once(',')) {
                    Some((meta, data)) if meta.ends_with(";base64") => {
                        images.push(Value::from(data));
                    }
                    _ => {
                        return Err(unsupported(
                            "Ollama",
                            &format!("messages[{i}].content"),
                            "it takes inline images only: send the image as a base64 data: URL",
                        ))
                    }
                }
            }
            other => {
                return Err(unsupported(
                    "Ollama",
                    &format!("messages[{i}].content"),
                    &format!("content parts of type {other:?} cannot be sent to this provider"),
                ))
            }
        }
    }
    Ok((text.join("\n"), images))
}

/// Builds the `/api/chat` body from the client's OpenAI chat request.
pub fn to_request(body: &Map<String, Value>, model: &str, stream: bool) -> Result<Bytes, ApiError> {
    refuse_unsupported(body)?;
    let send_tools = send_tools(body)?;
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::missing_param("messages"))?;
    let mut req = Map::new();
    req.insert("model".into(), Value::from(model));
    req.insert("messages".into(), Value::Array(chat_messages(messages)?));
    req.insert("stream".into(), Value::Bool(stream));
    if send_tools {
        let tools = tools(body);
        if !tools.is_empty() {
            req.insert("tools".into(), Value::Array(tools));
        }
    }
    let options = sampling_options(
        body,
        &[
            ("temperature", "temperature"),
            ("top_p", "top_p"),
            ("seed", "seed"),
            ("presence_penalty", "presence_penalty"),
            ("frequency_penalty", "frequency_penalty"),
        ],
        "num_predict",
        "stop",
    );
    if !options.is_empty() {
        req.insert("options".into(), Value::Object(options));
    }
    if let Some(format) = output_format(body)? {
        req.insert("format".into(), format);
    }
    Ok(Bytes::from(
        serde_json::to_vec(&req).expect("JSON values serialise"),
    ))
}

/// A 400 for what Ollama cannot honour: `n > 1`, `logprobs`, audio output.
fn refuse_unsupported(body: &Map<String, Value>) -> Result<(), ApiError> {
    refuse_n("Ollama", body)?;
    if body.get("logprobs").and_then(Value::as_bool) == Some(true) {
        return Err(unsupported(
            "Ollama",
            "logprobs",
            "it does not return log probabilities through this gateway",
        ));
    }
    refuse_audio("Ollama", body)
}

/// Whether to send the tools: not for `tool_choice: "none"`; a 400 for a `tool_choice`
/// that forces a call, which Ollama cannot do.
fn send_tools(body: &Map<String, Value>) -> Result<bool, ApiError> {
    match body.get("tool_choice") {
        None | Some(Value::Null) => Ok(true),
        Some(Value::String(s)) if s == "auto" => Ok(true),
        Some(Value::String(s)) if s == "none" => Ok(false),
        Some(_) => Err(unsupported(
            "Ollama",
            "tool_choice",
            "it cannot be forced to call a tool; use \"auto\" or \"none\"",
        )),
    }
}

/// OpenAI `messages` → Ollama chat messages, one for one.
fn chat_messages(messages: &[Value]) -> Result<Vec<Value>, ApiError> {
    // Tool results need the function's name, which only the earlier call carries.
    let mut call_names: Vec<(String, String)> = Vec::new();
    let mut out_messages = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let c = m.get("content").unwrap_or(&Value::Null);
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let msg = match role {
            "system" | "developer" => json!({"role": "system", "content": text_of(c)}),
            "user" => {
                let (text, images) = content(c, i)?;
                let mut msg = json!({"role": "user", "content": text});
                if !images.is_empty() {
                    msg["images"] = Value::Array(images);
                }
                msg
            }
            "assistant" => assistant_message(m, i, &mut call_names)?,
            "tool" | "function" => {
                let name = tool_name(&call_names, m, i)?;
                json!({"role": "tool", "content": text_of(c), "tool_name": name})
            }
            other => return Err(unknown_role(i, other)),
        };
        out_messages.push(msg);
    }
    Ok(out_messages)
}

/// An assistant message (message `i`) → Ollama's, its tool calls' `(id, name)` recorded in
/// `call_names`.
fn assistant_message(
    m: &Value,
    i: usize,
    call_names: &mut Vec<(String, String)>,
) -> Result<Value, ApiError> {
    let (text, _) = content(m.get("content").unwrap_or(&Value::Null), i)?;
    let mut msg = json!({"role": "assistant", "content": text});
    let calls = m
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|call| {
            let name = call.pointer("/function/name").cloned().unwrap_or_default();
            let id = call.get("id").and_then(Value::as_str).unwrap_or("");
            call_names.push((id.to_string(), name.as_str().unwrap_or("").into()));
            Ok(json!({"function": {"name": name, "arguments": tool_call_args(call, i)?}}))
        })
        .collect::<Result<Vec<Value>, ApiError>>()?;
    if !calls.is_empty() {
        msg["tool_calls"] = Value::Array(calls);
    }
    Ok(msg)
}

/// The client's function `tools` → Ollama tools (empty when there are none).
fn tools(body: &Map<String, Value>) -> Vec<Value> {
    body.get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("function"))
        .map(|f| json!({"type": "function", "function": f}))
        .collect()
}

/// `response_format` → Ollama's `format` (`"json"` or the JSON schema); `None` for text.
fn output_format(body: &Map<String, Value>) -> Result<Option<Value>, ApiError> {
    let Some(rf) = body.get("response_format") else {
        return Ok(None);
    };
    match rf.get("type").and_then(Value::as_str) {
        Some("text") | None => Ok(None),
        Some("json_object") => Ok(Some(Value::from("json"))),
        Some("json_schema") => Ok(Some(
            rf.pointer("/json_schema/schema")
                .cloned()
                .unwrap_or(Value::from("json")),
        )),
        Some(other) => Err(unsupported(
            "Ollama",
            "response_format",
            &format!("type {other:?}"),
        )),
    }
}

/// An OpenAI embeddings request → `/api/embed`.
pub fn to_embed_request(body: &Map<String, Value>, model: &str) -> Result<Bytes, ApiError> {
    let input = match body.get("input") {
        Some(v @ Value::String(_)) => v.clone(),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => Value::Array(a.clone()),
        _ => {
            return Err(unsupported(
                "Ollama",
                "input",
                "it embeds text: give a string or an array of strings",
            ))
        }
    };
    let mut req = json!({"model": model, "input": input});
    if let Some(d) = body.get("dimensions").and_then(Value::as_u64) {
        req["dimensions"] = Value::from(d);
    }
    Ok(Bytes::from(
        serde_json::to_vec(&req).expect("JSON values serialise"),
    ))
}

/// An `/api/embed` answer → an OpenAI embeddings list.
pub fn from_embed_response(
    body: &[u8],
    public_model: &str,
) -> Result<(Bytes, Option<Usage>), ApiError> {
    embeddings_list(body, public_model, Value::clone, |v| {
        Some(
            v.get("prompt_eval_count")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        )
    })
}

/// Ollama `done_reason` → OpenAI `finish_reason`.
fn finish_reason(reason: Option<&str>, has_call: bool) -> &'static str {
    match reason {
        Some("length") => "length",
        _ if has_call => "tool_calls",
        _ => "stop",
    }
}

fn usage_of(v: &Value) -> Option<Usage> {
    let prompt = v.get("prompt_eval_count").and_then(Value::as_u64);
    let completion = v.get("eval_count").and_then(Value::as_u64);
    if prompt.is_none() && completion.is_none() {
        return None;
    }
    let (p, c) = (prompt.unwrap_or(0), completion.unwrap_or(0));
    Some(Usage {
        prompt_tokens: p,
        completion_tokens: c,
        total_tokens: p + c,
        cached_tokens: 0,
        reasoning_tokens: 0,
    })
}

/// Ollama tool calls (arguments as objects) → OpenAI tool calls, ids numbered from `first`.
fn tool_calls(message: &Value, first: usize) -> Vec<Value> {
    message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(k, call)| {
            let f = call.get("function").unwrap_or(&Value::Null);
            let args = match f.get("arguments") {
                Some(Value::String(s)) => s.clone(),
                Some(v) => serde_json::to_string(v).expect("JSON values serialise"),
                None => "{}".into(),
            };
            json!({
                "id": format!("call_{}", first + k),
                "type": "function",
                "function": {"name": f.get("name").cloned().unwrap_or(Value::from("")), "arguments": args},
            })
        })
        .collect()
}

fn new_id() -> String {
    format!("chatcmpl-{:024x}", rand::random::<u128>() >> 32)
}

/// An error line or body (`{"error": "..."}`), if this is one.
fn error_message(v: &Value) -> Option<String> {
    match v.get("error")? {
        Value::String(s) => Some(s.clone()),
        other => other
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

/// A whole `/api/chat` answer → an OpenAI chat completion.
pub fn from_response(body: &[u8], public_model: &str) -> Result<(Bytes, Option<Usage>), ApiError> {
    let v = parse_answer(body)?;
    if let Some(m) = error_message(&v) {
        return Err(ApiError::upstream(502, "api_error", m).with_code("upstream_error"));
    }
    let msg = v
        .get("message")
        .ok_or_else(|| ApiError::bad_gateway("The upstream provider's answer has no 'message'."))?;
    let calls = tool_calls(msg, 0);
    let text = msg.get("content").and_then(Value::as_str).unwrap_or("");
    // As OpenAI: no text next to tool calls is `null`, not "".
    let content = if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        Value::from(text)
    };
    let mut message = json!({"role": "assistant", "content": content});
    let reason = finish_reason(
        v.get("done_reason").and_then(Value::as_str),
        !calls.is_empty(),
    );
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let choices =
        json!([{"index": 0, "message": message, "logprobs": null, "finish_reason": reason}]);
    Ok(completion(
        Value::from(new_id()),
        public_model,
        choices,
        usage_of(&v),
    ))
}

/// An Ollama error (`{"error": "..."}`) → the OpenAI shape. Ollama has no error types or
/// codes; a missing model (404) is reported as `model_not_found`.
pub fn error(status: u16, body: &[u8], provider: &str, retry_after: Option<String>) -> ApiError {
    let mut e = super::openai::upstream_error(status, body, provider, retry_after);
    if status == 404 && e.code.is_none() {
        e.code = Some("model_not_found".into());
    }
    e
}

/// Ollama's NDJSON stream (one chat answer object per line, the last with `done: true`) →
/// OpenAI chunks.
pub struct OllamaStream {
    parser: NdjsonParser,
    public_model: String,
    client_wants_usage: bool,
    id: String,
    created: u64,
    usage: Option<Usage>,
    started: bool,
    calls: usize,
    done: bool,
}

impl OllamaStream {
    pub fn new(public_model: &str, client_wants_usage: bool) -> Self {
        OllamaStream {
            parser: NdjsonParser::new(crate::core::sse::MAX_EVENT_BYTES),
            public_model: public_model.to_string(),
            client_wants_usage,
            id: new_id(),
            created: unix_now(),
            usage: None,
            started: false,
            calls: 0,
            done: false,
        }
    }

    fn chunk(&self, out: &mut BytesMut, delta: Value, finish: Option<&str>) {
        let c = chunk(&self.id, self.created, &self.public_model, delta, finish);
        write_event(out, &c);
    }

    fn line(&mut self, line: &[u8], out: &mut BytesMut) -> Result<(), ApiError> {
        if self.done {
            return Ok(());
        }
        let v: Value = serde_json::from_slice(line).map_err(|_| bad_stream_event())?;
        if let Some(m) = error_message(&v) {
            return Err(ApiError::upstream(502, "api_error", m).with_code("upstream_stream_error"));
        }
        if !self.started {
            self.started = true;
            self.chunk(out, json!({"role": "assistant", "content": ""}), None);
        }
        if let Some(msg) = v.get("message") {
            if let Some(text) = msg.get("content").and_then(Value::as_str) {
                if !text.is_empty() {
                    self.chunk(out, json!({"content": text}), None);
                }
            }
            for mut call in tool_calls(msg, self.calls) {
                call["index"] = Value::from(self.calls);
                self.calls += 1;
                self.chunk(out, json!({"tool_calls": [call]}), None);
            }
        }
        if v.get("done").and_then(Value::as_bool) == Some(true) {
            self.usage = usage_of(&v);
            let reason =
                finish_reason(v.get("done_reason").and_then(Value::as_str), self.calls > 0);
            self.chunk(out, json!({}), Some(reason));
            if let (true, Some(u)) = (self.client_wants_usage, self.usage) {
                write_event(
                    out,
                    &usage_chunk(&self.id, self.created, &self.public_model, u),
                );
            }
            crate::core::sse::write_done(out);
            self.done = true;
        }
        Ok(())
    }
}

impl StreamTranslator for OllamaStream {
    fn feed(&mut self, input: &[u8], out: &mut BytesMut) -> Result<(), ApiError> {
        if self.done {
            return Ok(());
        }
        // The parser is lent out while it hands lines to `self`.
        let mut parser = std::mem::replace(&mut self.parser, NdjsonParser::new(0));
        let r = parser.feed(input, |line| self.line(line, out));
        self.parser = parser;
        r.map_err(feed_error)
    }

    fn finish(&mut self, out: &mut BytesMut) -> Result<(), ApiError> {
        if !self.done {
            let mut parser = std::mem::replace(&mut self.parser, NdjsonParser::new(0));
            let r = parser.finish(|line| self.line(line, out));
            self.parser = parser;
            r?;
        }
        if self.done {
            Ok(())
        } else {
            Err(truncated_stream())
        }
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

/// Ollama's native `/api/chat` and `/api/embed`.
pub struct Ollama;

static DESCRIPTOR: Descriptor = Descriptor {
    default_base_url: Some("http://127.0.0.1:11434"),
    requires_api_key: false,
    credential: Credential::Bearer,
    headers: &[],
    stream_content_type: NDJSON,
    health_path: "/api/tags",
    api_version: "",
};

impl ProviderWire for Ollama {
    fn descriptor(&self) -> &Descriptor {
        &DESCRIPTOR
    }

    fn path(&self, embeddings: bool, _model: &str, _stream: bool) -> String {
        if embeddings { EMBED_PATH } else { CHAT_PATH }.into()
    }

    fn render(
        &self,
        body: &mut Map<String, Value>,
        model: &str,
        stream: bool,
        embeddings: bool,
    ) -> Result<Bytes, ApiError> {
        if embeddings {
            to_embed_request(body, model)
        } else {
            to_request(body, model, stream)
        }
    }

    fn response(
        &self,
        body: &[u8],
        public_model: &str,
        embeddings: bool,
    ) -> Result<(Bytes, Option<Usage>), ApiError> {
        if embeddings {
            from_embed_response(body, public_model)
        } else {
            from_response(body, public_model)
        }
    }

    fn error(
        &self,
        status: u16,
        body: &[u8],
        provider: &str,
        retry_after: Option<String>,
    ) -> ApiError {
        error(status, body, provider, retry_after)
    }

    fn stream(&self, public_model: &str, client_wants_usage: bool) -> Box<dyn StreamTranslator> {
        Box::new(OllamaStream::new(public_model, client_wants_usage))
    }

    /// Ollama's native API lives at the server root itself (`/api/chat`).
    fn check_base_path(&self, path: &str) -> Result<(), &'static str> {
        if path.ends_with("/v1") {
            return Err(
                "kind ollama speaks Ollama's native API: give the server root (e.g. \
                 http://127.0.0.1:11434); for its OpenAI-compatible /v1 API use kind \
                 openai_compatible",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
