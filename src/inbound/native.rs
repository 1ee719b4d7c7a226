//! Anthropic clients served by Anthropic deployments: the Messages request goes upstream as
//! the client wrote it (model renamed, sluice's credential), and the answer comes back as the
//! provider wrote it — event by event for streams — with the public model name restored and
//! the usage read on the way for metrics and limits.
//!
//! Used when the key has no output guardrails: those inspect OpenAI chunks, so a key with
//! output rules is served through the translated path (Anthropic → OpenAI → Anthropic).

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Map, Value};

use crate::api::ApiError;
use crate::providers::anthropic::{stream_error, usage_of};
use crate::providers::{bad_stream_event, parse_answer, SseEvents, SseInput, Usage};
use crate::stream::sse::SseEvent;

/// The client's Messages body for the deployment's model.
pub fn render(body: &Map<String, Value>, upstream_model: &str) -> Bytes {
    let mut body = body.clone();
    body.insert("model".into(), Value::from(upstream_model));
    Bytes::from(serde_json::to_vec(&body).expect("JSON values serialise"))
}

/// A whole Messages answer with the public model name; its usage.
pub fn response(body: &[u8], public_model: &str) -> Result<(Bytes, Option<Usage>), ApiError> {
    let mut v = parse_answer(body)?;
    let Some(obj) = v.as_object_mut() else {
        return Err(ApiError::bad_gateway(
            "The upstream provider returned a JSON response that is not an object.",
        ));
    };
    if obj.contains_key("model") {
        obj.insert("model".into(), Value::from(public_model));
    }
    let usage = obj.get("usage").map(usage_of);
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
    if let Some(n) = name {
        out.put_slice(b"event: ");
        out.put_slice(n.as_bytes());
        out.put_slice(b"\n");
    }
    out.put_slice(b"data: ");
    out.put_slice(data);
    out.put_slice(b"\n\n");
}

impl SseEvents for NativeMessagesStream {
    fn input(&mut self) -> &mut SseInput {
        &mut self.input
    }

    fn event(&mut self, ev: &SseEvent, out: &mut BytesMut) -> Result<(), ApiError> {
        let name = ev.event.as_deref();
        match name {
            Some("message_start") => {
                let mut v: Value =
                    serde_json::from_slice(&ev.data).map_err(|_| bad_stream_event())?;
                if let Some(m) = v.get_mut("message").and_then(Value::as_object_mut) {
                    m.insert("model".into(), Value::from(self.public_model.as_str()));
                    self.usage = m.get("usage").map(usage_of);
                }
                let data = serde_json::to_vec(&v).expect("JSON values serialise");
                write(out, name, &data);
            }
            Some("message_delta") => {
                let v: Value = serde_json::from_slice(&ev.data).map_err(|_| bad_stream_event())?;
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
                write(out, name, &ev.data);
            }
            Some("error") => {
                let v: Value = serde_json::from_slice(&ev.data).map_err(|_| bad_stream_event())?;
                return Err(stream_error(&v));
            }
            Some("message_stop") => {
                write(out, name, &ev.data);
                self.done = true;
            }
            _ => write(out, name, &ev.data),
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
