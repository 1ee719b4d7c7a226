//! Google Gemini (`generateContent`, `streamGenerateContent?alt=sse`), translated to and from
//! OpenAI chat completions.
//!
//! Parameter rule as for Anthropic: `logprobs`, audio and a `response_format` other than text
//! or JSON are refused with a 400 naming them; `n` maps to `candidateCount`; `seed`,
//! `frequency_penalty` and `presence_penalty` map to their Gemini equivalents; the rest of the
//! OpenAI-only parameters are dropped.

mod embed;

pub use embed::{embed_path, from_embed_response, to_embed_request};

use bytes::{Bytes, BytesMut};
use serde_json::{json, Map, Value};

use super::{
    chunk, completion, parse_answer, refuse_audio, sampling_options, text_of, tool_call_args,
    tool_name, unix_now, unknown_role, unsupported, usage_chunk, Credential, Descriptor,
    ProviderWire,
};
use crate::core::sse::write_event;
use crate::core::sse::SseEvent;
use crate::core::translate::bad_stream_event;
use crate::core::ApiError;
use crate::core::{SseEvents, SseInput, StreamTranslator, Usage};

/// The path (under the API root, `/v1beta`) for `model`.
pub fn path(model: &str, stream: bool) -> String {
    if stream {
        format!("/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("/models/{model}:generateContent")
    }
}

fn parts(content: &Value, i: usize) -> Result<Vec<Value>, ApiError> {
    match content {
        Value::Null => Ok(vec![]),
        Value::String(s) if s.is_empty() => Ok(vec![]),
        Value::String(s) => Ok(vec![json!({"text": s})]),
        Value::Array(items) => items
            .iter()
            .map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => Ok(json!({"text": p.get("text").cloned().unwrap_or(Value::from(""))})),
                Some("image_url") => {
                    let url = p.pointer("/image_url/url").and_then(Value::as_str).unwrap_or("");
                    match url.strip_prefix("data:").and_then(|r| r.split_once(',')) {
                        Some((meta, data)) => Ok(json!({"inlineData": {"mimeType": meta.trim_end_matches(";base64"), "data": data}})),
                        None => Ok(json!({"fileData": {"fileUri": url}})),
                    }
                }
                other => Err(unsupported("Gemini", 
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

/// Builds the Gemini request body from the client's OpenAI chat request.
pub fn to_request(body: &Map<String, Value>) -> Result<Bytes, ApiError> {
    refuse_unsupported(body)?;
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::missing_param("messages"))?;
    let (system, contents) = contents(messages)?;
    let mut req = Map::new();
    req.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        req.insert(
            "systemInstruction".into(),
            json!({"parts": [{"text": system.join("\n\n")}]}),
        );
    }
    let gen = generation_config(body)?;
    if !gen.is_empty() {
        req.insert("generationConfig".into(), Value::Object(gen));
    }
    let decls = function_declarations(body);
    if !decls.is_empty() {
        req.insert("tools".into(), json!([{"functionDeclarations": decls}]));
    }
    if let Some(c) = function_calling_config(body) {
        req.insert("toolConfig".into(), json!({"functionCallingConfig": c}));
    }
    Ok(Bytes::from(
        serde_json::to_vec(&req).expect("JSON values serialise"),
    ))
}

/// A 400 for `logprobs` or audio output, which Gemini cannot honour here.
fn refuse_unsupported(body: &Map<String, Value>) -> Result<(), ApiError> {
    if body.get("logprobs").and_then(Value::as_bool) == Some(true) {
        return Err(unsupported(
            "Gemini",
            "logprobs",
            "it does not return log probabilities here",
        ));
    }
    refuse_audio("Gemini", body)
}

/// OpenAI `messages` → the system texts and the Gemini `contents` turns, consecutive turns
/// of the same role merged into one.
fn contents(messages: &[Value]) -> Result<(Vec<String>, Vec<Value>), ApiError> {
    // Tool results need the function's name, which only the earlier call carries.
    let mut call_names: Vec<(String, String)> = Vec::new();
    let mut system: Vec<String> = Vec::new();
    let mut contents: Vec<(String, Vec<Value>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let content = m.get("content").unwrap_or(&Value::Null);
        let (role, p) = match m.get("role").and_then(Value::as_str).unwrap_or("") {
            "system" | "developer" => {
                system.push(text_of(content));
                continue;
            }
            "user" => ("user", parts(content, i)?),
            "assistant" => ("model", model_parts(m, i, &mut call_names)?),
            "tool" | "function" => ("user", vec![function_response(m, i, &call_names)?]),
            other => return Err(unknown_role(i, other)),
        };
        if p.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some((last, existing)) if last == role => existing.extend(p),
            _ => contents.push((role.to_string(), p)),
        }
    }
    let contents = contents
        .into_iter()
        .map(|(role, parts)| json!({"role": role, "parts": parts}))
        .collect();
    Ok((system, contents))
}

/// An assistant message (message `i`) → `model` parts: its content, then a `functionCall`
/// per tool call, each call's `(id, name)` recorded in `call_names`.
fn model_parts(
    m: &Value,
    i: usize,
    call_names: &mut Vec<(String, String)>,
) -> Result<Vec<Value>, ApiError> {
    let mut p = parts(m.get("content").unwrap_or(&Value::Null), i)?;
    for call in m
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = call
            .pointer("/function/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let id = call.get("id").and_then(Value::as_str).unwrap_or("");
        call_names.push((id.to_string(), name.to_string()));
        let args = tool_call_args(call, i)?;
        p.push(json!({"functionCall": {"name": name, "args": args}}));
    }
    Ok(p)
}

/// A tool message (message `i`) → a `functionResponse` part: its text as the response when
/// it is a JSON object, else wrapped as `{"content": text}`.
fn function_response(
    m: &Value,
    i: usize,
    call_names: &[(String, String)],
) -> Result<Value, ApiError> {
    let name = tool_name(call_names, m, i)?;
    let text = text_of(m.get("content").unwrap_or(&Value::Null));
    let response = serde_json::from_str::<Value>(&text)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({"content": text}));
    Ok(json!({"functionResponse": {"name": name, "response": response}}))
}

/// The `generationConfig`: the sampling options under Gemini's names, and the
/// `response_format` as a response MIME type (and schema).
fn generation_config(body: &Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    let mut gen = sampling_options(
        body,
        &[
            ("temperature", "temperature"),
            ("top_p", "topP"),
            ("seed", "seed"),
            ("presence_penalty", "presencePenalty"),
            ("frequency_penalty", "frequencyPenalty"),
            ("n", "candidateCount"),
        ],
        "maxOutputTokens",
        "stopSequences",
    );
    if let Some(rf) = body.get("response_format") {
        match rf.get("type").and_then(Value::as_str) {
            Some("text") | None => {}
            Some("json_object") => {
                gen.insert("responseMimeType".into(), Value::from("application/json"));
            }
            Some("json_schema") => {
                gen.insert("responseMimeType".into(), Value::from("application/json"));
                if let Some(schema) = rf.pointer("/json_schema/schema") {
                    gen.insert("responseJsonSchema".into(), schema.clone());
                }
            }
            Some(other) => {
                return Err(unsupported(
                    "Gemini",
                    "response_format",
                    &format!("type {other:?}"),
                ))
            }
        }
    }
    Ok(gen)
}

/// The client's function `tools` → Gemini function declarations (empty when there are none).
fn function_declarations(body: &Map<String, Value>) -> Vec<Value> {
    body.get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("function"))
        .map(|f| {
            let mut d = json!({"name": f.get("name").cloned().unwrap_or(Value::from(""))});
            if let Some(desc) = f.get("description") {
                d["description"] = desc.clone();
            }
            if let Some(p) = f.get("parameters") {
                d["parametersJsonSchema"] = p.clone();
            }
            d
        })
        .collect()
}

/// `tool_choice` → the `functionCallingConfig`, if it names a mode Gemini has.
fn function_calling_config(body: &Map<String, Value>) -> Option<Value> {
    match body.get("tool_choice") {
        Some(Value::String(s)) if s == "required" => Some(json!({"mode": "ANY"})),
        Some(Value::String(s)) if s == "none" => Some(json!({"mode": "NONE"})),
        Some(Value::String(s)) if s == "auto" => Some(json!({"mode": "AUTO"})),
        Some(Value::Object(o)) => o
            .get("function")
            .and_then(|f| f.get("name"))
            .map(|n| json!({"mode": "ANY", "allowedFunctionNames": [n]})),
        _ => None,
    }
}

/// Gemini `finishReason` → OpenAI `finish_reason` (`tool_calls` when the answer calls one).
pub fn finish_reason(reason: &str, has_call: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ if has_call => "tool_calls",
        _ => "stop",
    }
}

fn usage_of(u: &Value) -> Usage {
    let get = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let prompt = get("promptTokenCount");
    let completion = get("candidatesTokenCount") + get("thoughtsTokenCount");
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: get("totalTokenCount").max(prompt + completion),
        cached_tokens: get("cachedContentTokenCount"),
        reasoning_tokens: get("thoughtsTokenCount"),
    }
}

/// Text and function calls of one candidate; call ids are made up, numbered from `first_call`.
fn candidate(c: &Value, first_call: usize) -> (String, Vec<Value>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    for p in c
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if p.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            text.push_str(t);
        }
        if let Some(f) = p.get("functionCall") {
            calls.push(json!({
                "id": format!("call_{}", first_call + calls.len()),
                "type": "function",
                "function": {
                    "name": f.get("name").cloned().unwrap_or(Value::from("")),
                    "arguments": serde_json::to_string(f.get("args").unwrap_or(&json!({}))).expect("JSON values serialise"),
                }
            }));
        }
    }
    (text, calls)
}

/// A whole Gemini answer → an OpenAI chat completion.
pub fn from_response(body: &[u8], public_model: &str) -> Result<(Bytes, Option<Usage>), ApiError> {
    let v = parse_answer(body)?;
    let candidates = v
        .get("candidates")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            let why = v
                .pointer("/promptFeedback/blockReason")
                .and_then(Value::as_str)
                .map_or(String::new(), |r| format!(" (prompt blocked: {r})"));
            ApiError::bad_gateway(format!(
                "The upstream provider's answer has no candidates{why}."
            ))
        })?;
    let choices: Vec<Value> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (text, calls) = candidate(c, 0);
            let reason = c.get("finishReason").and_then(Value::as_str).unwrap_or("STOP");
            let mut message = json!({"role": "assistant", "content": text});
            if !calls.is_empty() {
                message["tool_calls"] = Value::Array(calls.clone());
            }
            json!({"index": c.get("index").cloned().unwrap_or(Value::from(i)), "message": message, "logprobs": null,
                   "finish_reason": finish_reason(reason, !calls.is_empty())})
        })
        .collect();
    let usage = v.get("usageMetadata").map(usage_of);
    Ok(completion(
        v.get("responseId")
            .cloned()
            .unwrap_or(Value::from("gemini")),
        public_model,
        Value::Array(choices),
        usage,
    ))
}

/// A Gemini error (`{"error":{"code","message","status"}}`) → the OpenAI shape.
/// `RESOURCE_EXHAUSTED` is a 429; an invalid API key (Gemini answers 400) is the gateway's
/// credential problem, a 502.
pub fn error(status: u16, body: &[u8], provider: &str, retry_after: Option<String>) -> ApiError {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let gstatus = v
        .as_ref()
        .and_then(|v| v.pointer("/error/status"))
        .and_then(Value::as_str);
    let message = v
        .as_ref()
        .and_then(|v| v.pointer("/error/message"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let bad_key = message.contains("API key not valid")
        || gstatus == Some("PERMISSION_DENIED")
        || gstatus == Some("UNAUTHENTICATED");
    let status = if bad_key {
        401
    } else if gstatus == Some("RESOURCE_EXHAUSTED") {
        429
    } else {
        status
    };
    let mut e = super::openai::upstream_error(status, body, provider, retry_after);
    if e.code.is_none()
        || e.code
            .as_deref()
            .is_some_and(|c| c.chars().all(|ch| ch.is_ascii_digit()))
    {
        e.code = gstatus.map(|s| s.to_ascii_lowercase());
    }
    e
}

/// Gemini SSE (each event a whole `GenerateContentResponse`, no terminal event) → OpenAI
/// chunks. The stream is complete when it ends after a candidate gave its `finishReason`.
pub struct GeminiStream {
    input: SseInput,
    public_model: String,
    client_wants_usage: bool,
    id: String,
    created: u64,
    usage: Option<Usage>,
    started: bool,
    calls: usize,
    finish: Option<&'static str>,
    done: bool,
}

impl GeminiStream {
    pub fn new(public_model: &str, client_wants_usage: bool) -> Self {
        GeminiStream {
            input: SseInput::new(),
            public_model: public_model.to_string(),
            client_wants_usage,
            id: String::from("gemini"),
            created: unix_now(),
            usage: None,
            started: false,
            calls: 0,
            finish: None,
            done: false,
        }
    }

    fn chunk(&self, out: &mut BytesMut, delta: Value, finish: Option<&str>) {
        let c = chunk(&self.id, self.created, &self.public_model, delta, finish);
        write_event(out, &c);
    }

    fn handle(&mut self, ev: &SseEvent<'_>, out: &mut BytesMut) -> Result<(), ApiError> {
        let v: Value = serde_json::from_slice(ev.data).map_err(|_| bad_stream_event())?;
        if let Some(err) = v.get("error") {
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("The upstream provider reported an error mid-stream.");
            let code = err
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("upstream_stream_error")
                .to_ascii_lowercase();
            return Err(ApiError::upstream(502, "api_error", message.to_string()).with_code(code));
        }
        if let Some(id) = v.get("responseId").and_then(Value::as_str) {
            self.id = id.to_string();
        }
        if let Some(u) = v.get("usageMetadata") {
            self.usage = Some(usage_of(u));
        }
        if !self.started {
            self.started = true;
            self.chunk(out, json!({"role": "assistant", "content": ""}), None);
        }
        if let Some(c) = v.pointer("/candidates/0") {
            let (text, calls) = candidate(c, self.calls);
            if !text.is_empty() {
                self.chunk(out, json!({"content": text}), None);
            }
            for call in calls {
                let mut call = call;
                call["index"] = Value::from(self.calls);
                self.calls += 1;
                self.chunk(out, json!({"tool_calls": [call]}), None);
            }
            if let Some(r) = c.get("finishReason").and_then(Value::as_str) {
                self.finish = Some(finish_reason(r, self.calls > 0));
            }
        }
        Ok(())
    }

    /// The body ended: complete if a finish reason was given.
    fn end(&mut self, out: &mut BytesMut) {
        if let Some(finish) = self.finish.filter(|_| !self.done) {
            self.chunk(out, json!({}), Some(finish));
            if self.client_wants_usage {
                if let Some(u) = self.usage {
                    let c = usage_chunk(&self.id, self.created, &self.public_model, u);
                    write_event(out, &c);
                }
            }
            crate::core::sse::write_done(out);
            self.done = true;
        }
    }
}

impl SseEvents for GeminiStream {
    fn input(&mut self) -> &mut SseInput {
        &mut self.input
    }

    fn event(&mut self, ev: &SseEvent<'_>, out: &mut BytesMut) -> Result<(), ApiError> {
        self.handle(ev, out)
    }

    fn done(&self) -> bool {
        self.done
    }

    fn at_end(&mut self, out: &mut BytesMut) {
        self.end(out);
    }

    fn usage_so_far(&self) -> Option<Usage> {
        self.usage
    }
}

/// Google Gemini's generateContent API.
pub struct Gemini;

static DESCRIPTOR: Descriptor = Descriptor {
    default_base_url: Some("https://generativelanguage.googleapis.com"),
    requires_api_key: true,
    credential: Credential::Header("x-goog-api-key"),
    headers: &[],
    stream_content_type: "text/event-stream",
    health_path: "/models",
    api_version: "/v1beta",
};

impl ProviderWire for Gemini {
    fn descriptor(&self) -> &Descriptor {
        &DESCRIPTOR
    }

    fn path(&self, embeddings: bool, model: &str, stream: bool) -> String {
        if embeddings {
            embed_path(model)
        } else {
            path(model, stream)
        }
    }

    fn render(
        &self,
        body: &mut Map<String, Value>,
        model: &str,
        _stream: bool,
        embeddings: bool,
    ) -> Result<Bytes, ApiError> {
        if embeddings {
            to_embed_request(body, model)
        } else {
            to_request(body)
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
        Box::new(GeminiStream::new(public_model, client_wants_usage))
    }
}

#[cfg(test)]
mod tests;
