//! The OpenAI wire format, spoken by the `openai`, `openai_compatible`, `groq` and `xai`
//! provider kinds (and by Ollama's `/v1` API, configured as `openai_compatible`).
//!
//! Requests pass through with the public model name replaced by the deployment's, and
//! `stream_options.include_usage` forced on for streams so that usage is always known. Answers
//! pass back with the public model name restored; the usage chunk is dropped from streams whose
//! client did not ask for it.

use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value};

use super::ProviderKind;
use super::{usage_chunk, Credential, Descriptor, ProviderWire};
use crate::core::members;
use crate::core::sse::write_event;
use crate::core::sse::SseEvent;
use crate::core::translate::bad_stream_event;
use crate::core::ApiError;
use crate::core::{SseEvents, SseInput, StreamTranslator, Usage};

mod raw;
pub use raw::{takes_raw_body, RawBody};

/// Builds the upstream request body: the client's body with `model` replaced and, for
/// streams, `stream_options.include_usage` set. Returns whether the client asked for usage.
pub fn prepare_request(body: &mut Map<String, Value>, upstream_model: &str, stream: bool) -> bool {
    body.insert("model".into(), Value::String(upstream_model.to_string()));
    if !stream {
        return false;
    }
    let opts = body
        .entry("stream_options")
        .or_insert_with(|| Value::Object(Map::new()));
    if !opts.is_object() {
        *opts = Value::Object(Map::new());
    }
    let opts = opts.as_object_mut().expect("made an object above");
    let client_wants = opts
        .get("include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    opts.insert("include_usage".into(), Value::Bool(true));
    client_wants
}

/// Builds the upstream body for an OpenAI-wire provider of `kind`, applying its quirks.
///
/// Groq: `n` > 1 and `logprobs` are refused (a 400 naming them: they would change the answer),
/// `logit_bias` and `messages[].name` are dropped, and `stream_options` is not sent (Groq puts a
/// stream's usage in `x_groq.usage`). xAI reasoning models (`grok-3-mini*`, `grok-4*`): the
/// penalties are dropped and `stop` is refused. Quirks apply to a copy: the client's body
/// stays intact for deployments of other kinds.
pub fn render(
    kind: ProviderKind,
    body: &mut Map<String, Value>,
    model: &str,
    stream: bool,
) -> Result<Bytes, ApiError> {
    let refuse = |param: &str, provider: &str| {
        ApiError::invalid_param(
            param,
            format!("'{param}' is not supported for this model's provider ({provider})."),
        )
        .with_code("unsupported_parameter")
    };
    let mut owned;
    let body = match kind {
        ProviderKind::Groq => {
            if body.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
                return Err(refuse("n", "Groq"));
            }
            if body.get("logprobs").and_then(Value::as_bool) == Some(true)
                || body.contains_key("top_logprobs")
            {
                return Err(refuse("logprobs", "Groq"));
            }
            owned = body.clone();
            owned.remove("logit_bias");
            if let Some(msgs) = owned.get_mut("messages").and_then(Value::as_array_mut) {
                for m in msgs.iter_mut().filter_map(Value::as_object_mut) {
                    m.remove("name");
                }
            }
            &mut owned
        }
        ProviderKind::Xai if model.starts_with("grok-3-mini") || model.starts_with("grok-4") => {
            if body.get("stop").is_some_and(|s| !s.is_null()) {
                return Err(refuse("stop", "xAI reasoning models"));
            }
            owned = body.clone();
            owned.remove("presence_penalty");
            owned.remove("frequency_penalty");
            &mut owned
        }
        _ => body,
    };
    prepare_request(body, model, stream);
    if kind == ProviderKind::Groq {
        body.remove("stream_options");
    }
    Ok(Bytes::from(
        serde_json::to_vec(&*body).expect("JSON values serialise"),
    ))
}

/// Rewrites a complete (non-stream) success body: `model` becomes the public name. The body
/// is validated and its `model` replaced in place; the rest goes out as the provider wrote it
/// (a body with `\u` escapes goes through a parse, which decodes them).
pub fn rewrite_response(
    body: &[u8],
    public_model: &str,
) -> Result<(Bytes, Option<Usage>), ApiError> {
    let picked = members::pick_unescaped(body, ["model", "usage"]).map_err(|e| match e {
        members::NotAnObject::Invalid(e) => not_json(&e),
        members::NotAnObject::Other => not_an_object(),
    })?;
    let Some([model, usage]) = picked else {
        return rewrite_parsed(body, public_model);
    };
    let usage = usage.and_then(Usage::from_raw);
    let Some(model) = model else {
        return Ok((Bytes::copy_from_slice(body), usage));
    };
    let name = json_string(public_model);
    let mut out = Vec::with_capacity(body.len() + name.len());
    members::splice(
        body,
        &mut [(members::span(body, model), name.as_bytes())],
        |s| out.extend_from_slice(s),
    );
    Ok((Bytes::from(out), usage))
}

/// [`rewrite_response`] through a parsed tree.
fn rewrite_parsed(body: &[u8], public_model: &str) -> Result<(Bytes, Option<Usage>), ApiError> {
    let mut v: Value = serde_json::from_slice(body).map_err(|e| not_json(&e))?;
    let obj = v.as_object_mut().ok_or_else(not_an_object)?;
    if obj.contains_key("model") {
        obj.insert("model".into(), Value::String(public_model.to_string()));
    }
    let usage = obj.get("usage").and_then(Usage::from_json);
    let bytes = serde_json::to_vec(&v).expect("JSON values serialise");
    Ok((Bytes::from(bytes), usage))
}

fn not_json(e: &serde_json::Error) -> ApiError {
    ApiError::bad_gateway(format!(
        "The upstream provider returned a response that is not valid JSON ({e})."
    ))
}

fn not_an_object() -> ApiError {
    ApiError::bad_gateway("The upstream provider returned a JSON response that is not an object.")
}

/// `s` as a JSON string.
fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

/// Turns a whole chat completion into the event stream the client asked for. Some
/// OpenAI-compatible servers ignore `stream: true`; their clients still get a stream: per
/// choice a chunk with the message and one with the finish reason, the usage chunk when asked
/// for, then `[DONE]`.
pub fn completion_to_sse(
    body: &[u8],
    public_model: &str,
    client_wants_usage: bool,
) -> Result<(Bytes, Option<Usage>), ApiError> {
    let (whole, usage) = rewrite_response(body, public_model)?;
    let v: Value = serde_json::from_slice(&whole).expect("just serialised");
    let choices = v
        .get("choices")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad_gateway("The upstream provider's answer has no 'choices'."))?;
    let base = |choices: Value| {
        let mut c = Map::new();
        for k in ["id", "created", "system_fingerprint"] {
            if let Some(x) = v.get(k) {
                c.insert(k.into(), x.clone());
            }
        }
        c.insert(
            "object".into(),
            Value::String("chat.completion.chunk".into()),
        );
        c.insert("model".into(), Value::String(public_model.to_string()));
        c.insert("choices".into(), choices);
        c
    };
    let mut out = BytesMut::with_capacity(whole.len() + 256);
    let mut emit = |c: Map<String, Value>| write_event(&mut out, &Value::Object(c));
    for (i, choice) in choices.iter().enumerate() {
        let index = choice.get("index").cloned().unwrap_or(Value::from(i));
        let mut delta = choice
            .get("message")
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        if let Some(calls) = delta.get_mut("tool_calls").and_then(Value::as_array_mut) {
            for (n, call) in calls.iter_mut().enumerate() {
                if let Some(obj) = call.as_object_mut() {
                    obj.entry("index").or_insert(Value::from(n));
                }
            }
        }
        emit(base(
            serde_json::json!([{"index": index, "delta": delta, "finish_reason": null}]),
        ));
        let finish = choice.get("finish_reason").cloned().unwrap_or(Value::Null);
        emit(base(
            serde_json::json!([{"index": index, "delta": {}, "finish_reason": finish}]),
        ));
    }
    if client_wants_usage {
        if let Some(u) = v.get("usage") {
            let mut c = base(Value::Array(vec![]));
            c.insert("usage".into(), u.clone());
            emit(c);
        }
    }
    crate::core::sse::write_done(&mut out);
    Ok((out.freeze(), usage))
}

/// Whether an error body says the provider's key was refused, whatever the status: xAI
/// answers a bad key with 400 "Incorrect API key provided", OpenAI-compatible servers use
/// the code `invalid_api_key`.
fn rejects_key(body: &[u8]) -> bool {
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    has(b"Incorrect API key provided") || has(b"\"invalid_api_key\"")
}

/// Normalises a provider's error answer into the OpenAI error shape.
///
/// The status is kept, except that a provider refusing sluice's own credentials (401/403, or
/// another status with a body that says so) becomes a 502 — the client's key was fine, the
/// gateway's was not — and statuses that are not errors at all become 502. The caller makes
/// the result safe to pass on ([`ApiError::from_provider`]).
pub fn upstream_error(
    status: u16,
    body: &[u8],
    provider: &str,
    retry_after: Option<String>,
) -> ApiError {
    if status == 401 || status == 403 || rejects_key(body) {
        return ApiError::bad_gateway(format!(
            "The upstream provider '{}' rejected the gateway's credentials (HTTP {status}). \
             The gateway operator must check this provider's api_key.",
            provider
        ))
        .with_code("upstream_auth_failed");
    }
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    let field = |k: &str| -> Option<String> {
        match err.and_then(|e| e.get(k))? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let message = field("message")
        .or_else(|| err.and_then(Value::as_str).map(str::to_string))
        .or_else(|| {
            parsed
                .as_ref()
                .and_then(|v| v.get("message"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| {
            format!(
                "The upstream provider '{}' returned HTTP {status}.",
                provider
            )
        });
    let (status, default_kind) = match status {
        429 => (429, "rate_limit_error"),
        400..=499 => (status, "invalid_request_error"),
        500 | 502 | 503 | 504 => (status, "api_error"),
        500..=599 => (503, "api_error"),
        _ => (502, "api_error"),
    };
    let kind: &'static str = match field("type").as_deref() {
        Some("invalid_request_error") => "invalid_request_error",
        Some("rate_limit_error") => "rate_limit_error",
        Some("server_error") => "server_error",
        Some("tokens") => "tokens",
        Some("requests") => "requests",
        Some("insufficient_quota") => "insufficient_quota",
        _ => default_kind,
    };
    let mut e = ApiError::upstream(status, kind, message).with_retry_after(retry_after);
    e.code = field("code").or_else(|| (status == 429).then(|| "rate_limit_exceeded".into()));
    e.param = field("param");
    e
}

/// OpenAI SSE → OpenAI SSE, restoring the public model name.
pub struct OpenAiStream {
    /// Emit a usage chunk before `[DONE]` from `x_groq.usage` (for providers that do not send
    /// one themselves).
    pub synthesize_usage_chunk: bool,
    /// `id` and `created` of the provider's chunks, for a synthesized usage chunk.
    last_id: (String, u64),
    input: SseInput,
    public_model: String,
    /// `public_model` as a JSON string.
    public_json: String,
    client_wants_usage: bool,
    usage: Option<Usage>,
    done: bool,
}

impl OpenAiStream {
    pub fn new(public_model: &str, client_wants_usage: bool) -> Self {
        OpenAiStream {
            synthesize_usage_chunk: false,
            last_id: (String::new(), 0),
            input: SseInput::new(),
            public_model: public_model.to_string(),
            public_json: json_string(public_model),
            client_wants_usage,
            usage: None,
            done: false,
        }
    }

    fn handle(&mut self, ev: &SseEvent<'_>, out: &mut BytesMut) -> Result<(), ApiError> {
        if self.done {
            return Ok(());
        }
        let data = ev.data.trim_ascii();
        if data == b"[DONE]" {
            if let (true, true, Some(u)) = (
                self.synthesize_usage_chunk,
                self.client_wants_usage,
                self.usage,
            ) {
                let (id, created) = &self.last_id;
                write_event(out, &usage_chunk(id, *created, &self.public_model, u));
            }
            self.done = true;
            crate::core::sse::write_done(out);
            return Ok(());
        }
        if self.relay_in_place(data, out) {
            return Ok(());
        }
        let mut v: Value = serde_json::from_slice(data).map_err(|_| bad_stream_event())?;
        let obj = v.as_object_mut().ok_or_else(|| {
            ApiError::bad_gateway(
                "The upstream provider sent a stream event that is not a JSON object.",
            )
            .with_code("upstream_stream_error")
        })?;
        if let Some(err) = obj.get("error") {
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| err.as_str())
                .unwrap_or("The upstream provider reported an error mid-stream.");
            return Err(ApiError::upstream(502, "api_error", message.to_string())
                .with_code("upstream_stream_error"));
        }
        if self.synthesize_usage_chunk && self.last_id.0.is_empty() {
            if let Some(id) = obj.get("id").and_then(Value::as_str) {
                let created = obj.get("created").and_then(Value::as_u64).unwrap_or(0);
                self.last_id = (id.to_string(), created);
            }
        }
        if let Some(u) = obj
            .get("usage")
            .and_then(Usage::from_json)
            .or_else(|| obj.get("x_groq")?.get("usage").and_then(Usage::from_json))
        {
            self.usage = Some(u);
        }
        if !self.client_wants_usage {
            let usage_only = obj
                .get("choices")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
                && obj.get("usage").is_some_and(|u| !u.is_null());
            if usage_only {
                return Ok(());
            }
            obj.remove("usage");
        }
        if obj.contains_key("model") {
            obj.insert("model".into(), Value::String(self.public_model.clone()));
        }
        write_event(out, &v);
        Ok(())
    }

    /// The common chunk — an object without `error` or `x_groq`, on a single line, without
    /// `\u` escapes (a parse decodes those, so they take the general path) — relayed
    /// as the provider wrote it: `model` replaced, `usage` taken out when the client did not
    /// ask for it, nothing else parsed or rebuilt. `false` leaves the event to [`Self::handle`]'s
    /// general path (which also reports what is wrong with it).
    fn relay_in_place(&mut self, data: &[u8], out: &mut BytesMut) -> bool {
        if self.synthesize_usage_chunk {
            return false;
        }
        let Some([model, usage, choices, error, groq]) =
            members::pick_line(data, ["model", "usage", "choices", "error", "x_groq"])
        else {
            return false;
        };
        if error.is_some() || groq.is_some() {
            return false;
        }
        let reported = usage.filter(|u| !members::is_null(*u));
        if let Some(u) = reported {
            let Some(u) = Usage::from_raw(u) else {
                return false;
            };
            self.usage = Some(u);
        }
        let name = self.public_json.as_bytes();
        let mut edits: [(std::ops::Range<usize>, &[u8]); 2] = [(0..0, b""), (0..0, b"")];
        let mut n = 0;
        if let (false, Some(u)) = (self.client_wants_usage, usage) {
            if reported.is_some() && choices.is_some_and(members::is_empty_array) {
                // The usage chunk the client did not ask for.
                return true;
            }
            let Some(r) = members::member_span(data, "usage", u) else {
                return false;
            };
            edits[n] = (r, b"");
            n += 1;
        }
        if let Some(m) = model {
            edits[n] = (members::span(data, m), name);
            n += 1;
        }
        out.extend_from_slice(b"data: ");
        members::splice(data, &mut edits[..n], |s| out.extend_from_slice(s));
        out.extend_from_slice(b"\n\n");
        true
    }
}

impl SseEvents for OpenAiStream {
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
        self.usage
    }
}

/// OpenAI chat completions, with the quirks of one provider kind (OpenAI, Groq, xAI, any
/// OpenAI-compatible server).
pub struct OpenAiWire {
    kind: ProviderKind,
    descriptor: Descriptor,
}

const fn openai_compatible(
    kind: ProviderKind,
    default_base_url: Option<&'static str>,
    requires_api_key: bool,
) -> OpenAiWire {
    OpenAiWire {
        kind,
        descriptor: Descriptor {
            default_base_url,
            requires_api_key,
            credential: Credential::Bearer,
            headers: &[],
            stream_content_type: "text/event-stream",
            health_path: "/models",
            api_version: "",
        },
    }
}

pub static OPENAI: OpenAiWire = openai_compatible(
    ProviderKind::OpenAi,
    Some("https://api.openai.com/v1"),
    true,
);
pub static GROQ: OpenAiWire = openai_compatible(
    ProviderKind::Groq,
    Some("https://api.groq.com/openai/v1"),
    true,
);
pub static XAI: OpenAiWire =
    openai_compatible(ProviderKind::Xai, Some("https://api.x.ai/v1"), true);
pub static COMPATIBLE: OpenAiWire = openai_compatible(ProviderKind::OpenAiCompatible, None, false);

impl ProviderWire for OpenAiWire {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn path(&self, embeddings: bool, _model: &str, _stream: bool) -> String {
        if embeddings {
            "/embeddings"
        } else {
            "/chat/completions"
        }
        .into()
    }

    fn render(
        &self,
        body: &mut Map<String, Value>,
        model: &str,
        stream: bool,
        _embeddings: bool,
    ) -> Result<Bytes, ApiError> {
        render(self.kind, body, model, stream)
    }

    fn response(
        &self,
        body: &[u8],
        public_model: &str,
        _embeddings: bool,
    ) -> Result<(Bytes, Option<Usage>), ApiError> {
        rewrite_response(body, public_model)
    }

    fn error(
        &self,
        status: u16,
        body: &[u8],
        provider: &str,
        retry_after: Option<String>,
    ) -> ApiError {
        upstream_error(status, body, provider, retry_after)
    }

    fn stream(&self, public_model: &str, client_wants_usage: bool) -> Box<dyn StreamTranslator> {
        let mut s = OpenAiStream::new(public_model, client_wants_usage);
        // Groq reports a stream's usage in `x_groq.usage`, not in a usage chunk.
        s.synthesize_usage_chunk = self.kind == ProviderKind::Groq;
        Box::new(s)
    }
}

#[cfg(test)]
mod tests;
