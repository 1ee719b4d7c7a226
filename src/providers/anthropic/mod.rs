//! The Anthropic Messages API (`POST /v1/messages`), translated to and from OpenAI chat
//! completions.
//!
//! Parameter rule: a parameter Anthropic cannot honour and whose loss would change the answer
//! the client asked for (`n > 1`, `logprobs`, a JSON `response_format`, audio) is a 400 naming
//! it; parameters whose loss changes nothing the client can rely on (`seed`,
//! `frequency_penalty`, `presence_penalty`, `logit_bias`, `service_tier`, `store`, `metadata`,
//! `prediction`) are dropped.

use bytes::{Bytes, BytesMut};
use serde_json::{json, Map, Value};

use super::{
    chunk, completion, parse_answer, refuse_audio, refuse_n, text_of, tool_call_args, unix_now,
    unknown_role, unsupported, usage_chunk, Credential, Descriptor, ProviderWire,
};
use crate::core::sse::write_event;
use crate::core::sse::SseEvent;
use crate::core::translate::bad_stream_event;
use crate::core::ApiError;
use crate::core::{SseEvents, SseInput, StreamTranslator, Usage};

/// The `anthropic-version` header sluice speaks.
pub const VERSION: &str = "2023-06-01";
/// `max_tokens` when the client gave none (Anthropic requires it).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// OpenAI content (string or parts) → Anthropic content blocks.
fn blocks(content: &Value, i: usize) -> Result<Vec<Value>, ApiError> {
    match content {
        Value::Null => Ok(vec![]),
        Value::String(s) if s.is_empty() => Ok(vec![]),
        Value::String(s) => Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(parts) => parts
            .iter()
            .map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => Ok(json!({"type": "text", "text": p.get("text").cloned().unwrap_or(Value::from(""))})),
                Some("image_url") => {
                    let url = p
                        .pointer("/image_url/url")
                        .and_then(Value::as_str)
                        .ok_or_else(|| {
                            ApiError::invalid_param(
                                &format!("messages[{i}].content"),
                                "image_url parts need image_url.url",
                            )
                        })?;
                    Ok(image_block(url))
                }
                other => Err(unsupported("Anthropic", 
                    &format!("messages[{i}].content"),
                    &format!("content parts of type {other:?} cannot be sent to this provider"),
                )),
            })
            .collect(),
        _ => Err(ApiError::invalid_param(
            &format!("messages[{i}].content"),
            "content must be a string or an array of parts",
        )),
    }
}

fn image_block(url: &str) -> Value {
    if let Some(rest) = url.strip_prefix("data:") {
        if let Some((meta, data)) = rest.split_once(',') {
            let media = meta.trim_end_matches(";base64");
            return json!({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}});
        }
    }
    json!({"type": "image", "source": {"type": "url", "url": url}})
}

/// Builds the Anthropic request body from the client's OpenAI chat request.
pub fn to_request(body: &Map<String, Value>, model: &str, stream: bool) -> Result<Bytes, ApiError> {
    refuse_unsupported(body)?;
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::missing_param("messages"))?;
    let (system, messages) = turns(messages)?;
    let mut req = Map::new();
    req.insert("model".into(), Value::from(model));
    let max_tokens = body
        .get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    req.insert("max_tokens".into(), Value::from(max_tokens));
    if !system.is_empty() {
        req.insert("system".into(), Value::from(system.join("\n\n")));
    }
    req.insert("messages".into(), Value::Array(messages));
    sampling(body, &mut req);
    if let Some(user) = body.get("user").and_then(Value::as_str) {
        req.insert("metadata".into(), json!({"user_id": user}));
    }
    let tools = tools(body);
    if !tools.is_empty() {
        req.insert("tools".into(), Value::Array(tools));
    }
    if let Some(c) = tool_choice(body, req.contains_key("tools")) {
        req.insert("tool_choice".into(), c);
    }
    if stream {
        req.insert("stream".into(), Value::Bool(true));
    }
    Ok(Bytes::from(
        serde_json::to_vec(&req).expect("JSON values serialise"),
    ))
}

/// A 400 for what Anthropic cannot honour: `n > 1`, `logprobs`, a JSON `response_format`,
/// audio output.
fn refuse_unsupported(body: &Map<String, Value>) -> Result<(), ApiError> {
    refuse_n("Anthropic", body)?;
    if body.get("logprobs").and_then(Value::as_bool) == Some(true)
        || body.contains_key("top_logprobs")
    {
        return Err(unsupported(
            "Anthropic",
            "logprobs",
            "it does not return log probabilities",
        ));
    }
    if let Some(rf) = body.get("response_format") {
        if rf.get("type").and_then(Value::as_str) != Some("text") {
            return Err(unsupported(
                "Anthropic",
                "response_format",
                "it has no JSON mode",
            ));
        }
    }
    refuse_audio("Anthropic", body)
}

/// OpenAI `messages` → the system texts and the Anthropic messages, consecutive messages of
/// the same role merged into one.
fn turns(messages: &[Value]) -> Result<(Vec<String>, Vec<Value>), ApiError> {
    let mut system: Vec<String> = Vec::new();
    let mut out: Vec<(String, Vec<Value>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let content = m.get("content").unwrap_or(&Value::Null);
        let (role, blocks) = match role {
            "system" | "developer" => {
                system.push(text_of(content));
                continue;
            }
            "user" => ("user", blocks(content, i)?),
            "assistant" => ("assistant", assistant_blocks(m, i)?),
            "tool" | "function" => {
                let id = m.get("tool_call_id").and_then(Value::as_str).unwrap_or("");
                (
                    "user",
                    vec![
                        json!({"type": "tool_result", "tool_use_id": id, "content": text_of(content)}),
                    ],
                )
            }
            other => return Err(unknown_role(i, other)),
        };
        if blocks.is_empty() {
            continue;
        }
        // Anthropic wants alternating roles: merge consecutive messages of the same role.
        match out.last_mut() {
            Some((last, b)) if last == role => b.extend(blocks),
            _ => out.push((role.to_string(), blocks)),
        }
    }
    let out = out
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    Ok((system, out))
}

/// An assistant message (message `i`) → its content blocks, then a `tool_use` block per
/// tool call.
fn assistant_blocks(m: &Value, i: usize) -> Result<Vec<Value>, ApiError> {
    let mut b = blocks(m.get("content").unwrap_or(&Value::Null), i)?;
    for call in m
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let input = tool_call_args(call, i)?;
        b.push(json!({
            "type": "tool_use",
            "id": call.get("id").cloned().unwrap_or(Value::from("")),
            "name": call.pointer("/function/name").cloned().unwrap_or(Value::from("")),
            "input": input,
        }));
    }
    Ok(b)
}

/// `temperature`, `top_p` and `stop` (→ `stop_sequences`) into `req`; nulls are skipped.
fn sampling(body: &Map<String, Value>, req: &mut Map<String, Value>) {
    for (from, to) in [("temperature", "temperature"), ("top_p", "top_p")] {
        if let Some(v) = body.get(from).filter(|v| !v.is_null()) {
            req.insert(to.into(), v.clone());
        }
    }
    match body.get("stop") {
        Some(Value::String(s)) => {
            req.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(a)) if !a.is_empty() => {
            req.insert("stop_sequences".into(), Value::Array(a.clone()));
        }
        _ => {}
    }
}

/// The client's function `tools` → Anthropic tools (empty when there are none).
fn tools(body: &Map<String, Value>) -> Vec<Value> {
    body.get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("function"))
        .map(|f| {
            let mut t = json!({
                "name": f.get("name").cloned().unwrap_or(Value::from("")),
                "input_schema": f.get("parameters").cloned().unwrap_or(json!({"type": "object", "properties": {}})),
            });
            if let Some(d) = f.get("description") {
                t["description"] = d.clone();
            }
            t
        })
        .collect()
}

/// `tool_choice` → Anthropic's, with `disable_parallel_tool_use` when the client turned
/// `parallel_tool_calls` off and the request has tools (`has_tools`).
fn tool_choice(body: &Map<String, Value>, has_tools: bool) -> Option<Value> {
    let mut choice = match body.get("tool_choice") {
        Some(Value::String(s)) if s == "required" => Some(json!({"type": "any"})),
        Some(Value::String(s)) if s == "none" => Some(json!({"type": "none"})),
        Some(Value::String(s)) if s == "auto" => Some(json!({"type": "auto"})),
        Some(Value::Object(o)) => o
            .get("function")
            .and_then(|f| f.get("name"))
            .map(|n| json!({"type": "tool", "name": n})),
        _ => None,
    };
    if body.get("parallel_tool_calls") == Some(&Value::Bool(false)) && has_tools {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if c["type"] != "none" {
            c["disable_parallel_tool_use"] = Value::Bool(true);
        }
    }
    choice
}

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
pub fn finish_reason(stop: &str) -> &'static str {
    match stop {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

pub(crate) fn usage_of(u: &Value) -> Usage {
    let get = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let prompt =
        get("input_tokens") + get("cache_read_input_tokens") + get("cache_creation_input_tokens");
    let completion = get("output_tokens");
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        cached_tokens: get("cache_read_input_tokens"),
        reasoning_tokens: 0,
    }
}

/// A whole Anthropic message → an OpenAI chat completion.
pub fn from_response(body: &[u8], public_model: &str) -> Result<(Bytes, Option<Usage>), ApiError> {
    let v = parse_answer(body)?;
    let content = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad_gateway("The upstream provider's answer has no 'content'."))?;
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in content {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => calls.push(json!({
                "id": b.get("id").cloned().unwrap_or(Value::from("")),
                "type": "function",
                "function": {
                    "name": b.get("name").cloned().unwrap_or(Value::from("")),
                    "arguments": serde_json::to_string(b.get("input").unwrap_or(&json!({}))).expect("JSON values serialise"),
                }
            })),
            _ => {}
        }
    }
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::from(text) }});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let usage = v.get("usage").map(usage_of);
    let stop = v
        .get("stop_reason")
        .and_then(Value::as_str)
        .unwrap_or("end_turn");
    Ok(completion(
        v.get("id").cloned().unwrap_or(Value::from("msg")),
        public_model,
        json!([{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason(stop)}]),
        usage,
    ))
}

/// An Anthropic error (`{"type":"error","error":{"type","message"}}`) → the OpenAI shape.
/// 529 `overloaded_error` → 503 `overloaded`; the credential rule of the OpenAI path applies.
pub fn error(status: u16, body: &[u8], provider: &str, retry_after: Option<String>) -> ApiError {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let kind = v
        .as_ref()
        .and_then(|v| v.pointer("/error/type"))
        .and_then(Value::as_str);
    let mut e = super::openai::upstream_error(status, body, provider, retry_after);
    if status == 529 || kind == Some("overloaded_error") {
        e.status = 503;
        e.kind = "api_error";
        e.code = Some("overloaded".into());
    } else if e.code.is_none() {
        e.code = kind.map(str::to_string);
    }
    e
}

/// An error event inside a 200 stream.
pub(crate) fn stream_error(data: &Value) -> ApiError {
    let kind = data
        .pointer("/error/type")
        .and_then(Value::as_str)
        .unwrap_or("api_error");
    let message = data
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("The upstream provider reported an error mid-stream.");
    let (status, code) = match kind {
        "overloaded_error" => (503, "overloaded"),
        "rate_limit_error" => (429, "rate_limit_exceeded"),
        _ => (502, "upstream_stream_error"),
    };
    ApiError::upstream(status, "api_error", message.to_string()).with_code(code)
}

/// Anthropic SSE → OpenAI chat-completion chunks.
pub struct AnthropicStream {
    input: SseInput,
    public_model: String,
    client_wants_usage: bool,
    id: String,
    created: u64,
    usage: Usage,
    /// Anthropic content-block index → OpenAI tool-call index.
    tool_index: Vec<(u64, usize)>,
    finish: Option<&'static str>,
    done: bool,
}

impl AnthropicStream {
    pub fn new(public_model: &str, client_wants_usage: bool) -> Self {
        AnthropicStream {
            input: SseInput::new(),
            public_model: public_model.to_string(),
            client_wants_usage,
            id: String::new(),
            created: unix_now(),
            usage: Usage::default(),
            tool_index: Vec::new(),
            finish: None,
            done: false,
        }
    }

    fn chunk(&self, out: &mut BytesMut, delta: Value, finish: Option<&str>) {
        let c = chunk(&self.id, self.created, &self.public_model, delta, finish);
        write_event(out, &c);
    }

    fn handle(&mut self, ev: &SseEvent<'_>, out: &mut BytesMut) -> Result<(), ApiError> {
        if self.done {
            return Ok(());
        }
        let data: Value = serde_json::from_slice(ev.data).map_err(|_| bad_stream_event())?;
        let kind = data
            .get("type")
            .and_then(Value::as_str)
            .or(ev.event)
            .unwrap_or("");
        match kind {
            "message_start" => self.message_start(&data, out),
            "content_block_start" => self.content_block_start(&data, out),
            "content_block_delta" => self.content_block_delta(&data, out),
            "message_delta" => self.message_delta(&data),
            "message_stop" => self.message_stop(out),
            "error" => return Err(stream_error(&data)),
            _ => {} // ping, content_block_stop, and event types added later
        }
        Ok(())
    }

    /// `message_start`: the message id and prompt usage, and the opening assistant chunk.
    fn message_start(&mut self, data: &Value, out: &mut BytesMut) {
        let msg = data.get("message").unwrap_or(&Value::Null);
        self.id = msg
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("msg")
            .to_string();
        if let Some(u) = msg.get("usage") {
            self.usage = usage_of(u);
        }
        self.chunk(out, json!({"role": "assistant", "content": ""}), None);
    }

    /// `content_block_start`: a `tool_use` block opens the next OpenAI tool call.
    fn content_block_start(&mut self, data: &Value, out: &mut BytesMut) {
        let block = data.get("content_block").unwrap_or(&Value::Null);
        if block.get("type").and_then(Value::as_str) == Some("tool_use") {
            let at = data.get("index").and_then(Value::as_u64).unwrap_or(0);
            let index = self.tool_index.len();
            self.tool_index.push((at, index));
            self.chunk(
                out,
                json!({"tool_calls": [{
                    "index": index,
                    "id": block.get("id").cloned().unwrap_or(Value::from("")),
                    "type": "function",
                    "function": {"name": block.get("name").cloned().unwrap_or(Value::from("")), "arguments": ""}
                }]}),
                None,
            );
        }
    }

    /// `content_block_delta`: text → a content chunk; argument JSON → a tool-call chunk for
    /// the block's call.
    fn content_block_delta(&mut self, data: &Value, out: &mut BytesMut) {
        let delta = data.get("delta").unwrap_or(&Value::Null);
        match delta.get("type").and_then(Value::as_str) {
            Some("text_delta") => {
                let text = delta.get("text").cloned().unwrap_or(Value::from(""));
                self.chunk(out, json!({"content": text}), None);
            }
            Some("input_json_delta") => {
                let at = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                let index = self
                    .tool_index
                    .iter()
                    .find(|(a, _)| *a == at)
                    .map_or(0, |(_, i)| *i);
                let part = delta
                    .get("partial_json")
                    .cloned()
                    .unwrap_or(Value::from(""));
                self.chunk(
                    out,
                    json!({"tool_calls": [{"index": index, "function": {"arguments": part}}]}),
                    None,
                );
            }
            _ => {}
        }
    }

    /// `message_delta`: the stop reason and the output token count.
    fn message_delta(&mut self, data: &Value) {
        if let Some(stop) = data.pointer("/delta/stop_reason").and_then(Value::as_str) {
            self.finish = Some(finish_reason(stop));
        }
        if let Some(n) = data.pointer("/usage/output_tokens").and_then(Value::as_u64) {
            self.usage.completion_tokens = n;
            self.usage.total_tokens = self.usage.prompt_tokens + n;
        }
    }

    /// `message_stop`: the finish chunk, the usage chunk if the client asked for it, `[DONE]`.
    fn message_stop(&mut self, out: &mut BytesMut) {
        self.chunk(out, json!({}), Some(self.finish.unwrap_or("stop")));
        if self.client_wants_usage {
            let c = usage_chunk(&self.id, self.created, &self.public_model, self.usage);
            write_event(out, &c);
        }
        crate::core::sse::write_done(out);
        self.done = true;
    }
}

impl SseEvents for AnthropicStream {
    fn input(&mut self) -> &mut SseInput {
        &mut self.input
    }

    fn event(&mut self, ev: &SseEvent<'_>, out: &mut BytesMut) -> Result<(), ApiError> {
        self.handle(ev, out)
    }

    fn done(&self) -> bool {
        self.done
    }

    fn usage_so_far(&self) -> Option<Usage> {
        (self.usage != Usage::default()).then_some(self.usage)
    }
}

/// The Anthropic Messages API.
pub struct Anthropic;

static DESCRIPTOR: Descriptor = Descriptor {
    default_base_url: Some("https://api.anthropic.com"),
    requires_api_key: true,
    credential: Credential::Header("x-api-key"),
    headers: &[("anthropic-version", VERSION)],
    stream_content_type: "text/event-stream",
    health_path: "/models",
    api_version: "/v1",
};

impl ProviderWire for Anthropic {
    fn descriptor(&self) -> &Descriptor {
        &DESCRIPTOR
    }

    fn path(&self, embeddings: bool, _model: &str, _stream: bool) -> String {
        if embeddings {
            "/embeddings"
        } else {
            "/messages"
        }
        .into()
    }

    fn render(
        &self,
        body: &mut Map<String, Value>,
        model: &str,
        stream: bool,
        embeddings: bool,
    ) -> Result<Bytes, ApiError> {
        if embeddings {
            return Err(ApiError::invalid_request(
                "This model's provider (Anthropic) has no embeddings API.",
            )
            .with_param("model")
            .with_code("unsupported_endpoint"));
        }
        to_request(body, model, stream)
    }

    fn response(
        &self,
        body: &[u8],
        public_model: &str,
        _embeddings: bool,
    ) -> Result<(Bytes, Option<Usage>), ApiError> {
        from_response(body, public_model)
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
        Box::new(AnthropicStream::new(public_model, client_wants_usage))
    }
}

#[cfg(test)]
mod tests;
