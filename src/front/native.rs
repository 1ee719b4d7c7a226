//! Clients served by a provider that speaks their API: Anthropic Messages to Anthropic, OpenAI
//! Responses to OpenAI. The request goes upstream as the client wrote it (model renamed,
//! sluice's credential), and the answer comes back as the provider wrote it — event by event
//! for streams — with the public model name restored and the usage read on the way for
//! metrics and limits.
//!
//! Used when the key has no output guardrails: those inspect OpenAI chat chunks, so a key with
//! output rules is served through the translated path.

use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value};

use crate::core::sse::SseEvent;
use crate::core::translate::bad_stream_event;
use crate::core::ApiError;
use crate::core::{SseEvents, SseInput, Usage};
use crate::providers::anthropic::{stream_error, usage_of};
use crate::providers::parse_answer;

/// The client's body for the deployment's model.
pub fn render(body: &Map<String, Value>, upstream_model: &str) -> Bytes {
    let mut body = body.clone();
    body.insert("model".into(), Value::from(upstream_model));
    Bytes::from(serde_json::to_vec(&body).expect("JSON values serialise"))
}

/// A whole Messages (`responses: false`) or Responses answer with the public model name; its
/// usage.
pub fn response(
    body: &[u8],
    public_model: &str,
    responses: bool,
) -> Result<(Bytes, Option<Usage>), ApiError> {
    let mut v = parse_answer(body)?;
    let Some(obj) = v.as_object_mut() else {
        return Err(ApiError::bad_gateway(
            "The upstream provider returned a JSON response that is not an object.",
        ));
    };
    if obj.contains_key("model") {
        obj.insert("model".into(), Value::from(public_model));
    }
    let usage = obj.get("usage").map(|u| {
        if responses {
            responses_usage(u)
        } else {
            usage_of(u)
        }
    });
    Ok((
        Bytes::from(serde_json::to_vec(&v).expect("JSON values serialise")),
        usage,
    ))
}

/// A Messages event stream relayed event by event; `message_start` gets the public model
/// name. An `error` event ends the stream (the relay sends it in Anthropic's shape).
pub struct NativeMessagesStream {
    input: SseInput,
    public_model: String,
    usage: Option<Usage>,
    done: bool,
}

impl NativeMessagesStream {
    pub fn new(public_model: &str) -> Self {
        NativeMessagesStream {
            input: SseInput::new(),
            public_model: public_model.to_string(),
            usage: None,
            done: false,
        }
    }
}

fn write(out: &mut BytesMut, name: Option<&str>, data: &[u8]) {
    crate::core::sse::write_data(out, name, data);
}

impl SseEvents for NativeMessagesStream {
    fn input(&mut self) -> &mut SseInput {
        &mut self.input
    }

    fn event(&mut self, ev: &SseEvent<'_>, out: &mut BytesMut) -> Result<(), ApiError> {
        let name = ev.event;
        match name {
            Some("message_start") => {
                let mut v: Value =
                    serde_json::from_slice(ev.data).map_err(|_| bad_stream_event())?;
                if let Some(m) = v.get_mut("message").and_then(Value::as_object_mut) {
                    m.insert("model".into(), Value::from(self.public_model.as_str()));
                    self.usage = m.get("usage").map(usage_of);
                }
                let data = serde_json::to_vec(&v).expect("JSON values serialise");
                write(out, name, &data);
            }
            Some("message_delta") => {
                let v: Value = serde_json::from_slice(ev.data).map_err(|_| bad_stream_event())?;
                if let Some(u) = v.get("usage") {
                    let later = usage_of(u);
                    let mut usage = self.usage.unwrap_or_default();
                    usage.completion_tokens = later.completion_tokens;
                    if later.prompt_tokens > 0 {
                        usage.prompt_tokens = later.prompt_tokens;
                        usage.cached_tokens = later.cached_tokens;
                    }
                    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
                    self.usage = Some(usage);
                }
                write(out, name, ev.data);
            }
            Some("error") => {
                let v: Value = serde_json::from_slice(ev.data).map_err(|_| bad_stream_event())?;
                return Err(stream_error(&v));
            }
            Some("message_stop") => {
                write(out, name, ev.data);
                self.done = true;
            }
            _ => write(out, name, ev.data),
        }
        Ok(())
    }

    fn done(&self) -> bool {
        self.done
    }

    fn usage_so_far(&self) -> Option<Usage> {
        self.usage
    }

    fn error_event(&mut self, e: &ApiError) -> Bytes {
        super::anthropic::error_event(e)
    }
}

/// A Responses `usage` object (`input_tokens` includes the cached ones).
fn responses_usage(u: &Value) -> Usage {
    let get = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let (prompt, completion) = (get("/input_tokens"), get("/output_tokens"));
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        cached_tokens: get("/input_tokens_details/cached_tokens"),
        reasoning_tokens: get("/output_tokens_details/reasoning_tokens"),
    }
}

/// A Responses event stream relayed event by event; every event that carries the response
/// object gets the public model name. The stream is complete at `response.completed`,
/// `response.incomplete` or `response.failed`; an `error` event ends it.
pub struct NativeResponsesStream {
    input: SseInput,
    public_model: String,
    usage: Option<Usage>,
    last_seq: u64,
    done: bool,
}

impl NativeResponsesStream {
    pub fn new(public_model: &str) -> Self {
        NativeResponsesStream {
            input: SseInput::new(),
            public_model: public_model.to_string(),
            usage: None,
            last_seq: 0,
            done: false,
        }
    }
}

impl SseEvents for NativeResponsesStream {
    fn input(&mut self) -> &mut SseInput {
        &mut self.input
    }

    fn event(&mut self, ev: &SseEvent<'_>, out: &mut BytesMut) -> Result<(), ApiError> {
        let mut v: Value = serde_json::from_slice(ev.data).map_err(|_| bad_stream_event())?;
        if let Some(n) = v.get("sequence_number").and_then(Value::as_u64) {
            self.last_seq = n;
        }
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if kind == "error" {
            let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
            let message = field("message")
                .unwrap_or_else(|| "The upstream provider reported an error mid-stream.".into());
            let status = match field("code").as_deref() {
                Some("rate_limit_exceeded") => 429,
                Some("server_is_overloaded" | "overloaded") => 503,
                _ => 502,
            };
            let mut e = ApiError::upstream(status, "api_error", message);
            e.code = field("code").or_else(|| Some("upstream_stream_error".into()));
            return Err(e);
        }
        let Some(r) = v.get_mut("response").and_then(Value::as_object_mut) else {
            write(out, ev.event, ev.data);
            return Ok(());
        };
        r.insert("model".into(), Value::from(self.public_model.as_str()));
        if let Some(u) = r.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(responses_usage(u));
        }
        let data = serde_json::to_vec(&v).expect("JSON values serialise");
        write(out, ev.event, &data);
        if matches!(
            kind.as_str(),
            "response.completed" | "response.incomplete" | "response.failed"
        ) {
            self.done = true;
        }
        Ok(())
    }

    fn done(&self) -> bool {
        self.done
    }

    fn usage_so_far(&self) -> Option<Usage> {
        self.usage
    }

    fn error_event(&mut self, e: &ApiError) -> Bytes {
        super::responses::error_event_at(e, self.last_seq + 1)
    }
}
