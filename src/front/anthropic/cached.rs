//! A Messages answer relayed natively, in the chat form the response cache keeps. The
//! Anthropic provider's translator does the conversion; what it would lose on the way back
//! (a `stop_sequence` stop, thinking blocks, citations, server tools, a `pause_turn`) keeps
//! the answer out of the cache instead.

use bytes::{Bytes, BytesMut};
use serde_json::Value;

use crate::core::sse::{write_data, SseEvent};
use crate::core::{ApiError, SseEvents, SseInput, StreamTranslator, Usage};
use crate::providers::{ProviderKind, Wire};

/// Stop reasons a replay gives back as they were.
const KEPT_STOPS: &[&str] = &["end_turn", "max_tokens", "tool_use"];

/// Whether a content block comes back as it was.
fn kept_block(b: &Value) -> bool {
    match b.get("type").and_then(Value::as_str) {
        Some("text") => b.get("citations").is_none_or(Value::is_null),
        Some("tool_use") => true,
        _ => false,
    }
}

/// A whole native Messages answer → the chat completion the cache keeps.
pub fn whole_as_chat(body: &[u8], public_model: &str) -> Option<Bytes> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let stop = v.get("stop_reason").and_then(Value::as_str)?;
    let blocks = v.get("content")?.as_array()?;
    if !KEPT_STOPS.contains(&stop) || !blocks.iter().all(kept_block) {
        return None;
    }
    let wire = Wire::of(ProviderKind::Anthropic);
    wire.response(body, public_model, false)
        .ok()
        .map(|(b, _)| b)
}

/// A native Messages stream → OpenAI chunks, through the Anthropic provider's translator;
/// an event the chunks would not give back fails it (the answer is then not cached).
pub struct MessagesAsChunks {
    input: SseInput,
    inner: Box<dyn StreamTranslator>,
    scratch: BytesMut,
    done: bool,
}

impl MessagesAsChunks {
    pub fn new(public_model: &str) -> Self {
        MessagesAsChunks {
            input: SseInput::new(),
            inner: Wire::of(ProviderKind::Anthropic).stream(public_model, true),
            scratch: BytesMut::new(),
            done: false,
        }
    }
}

/// Whether an event of the stream comes back as it was.
fn kept_event(ev: &SseEvent<'_>) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(ev.data) else {
        return false;
    };
    match ev.event {
        Some("content_block_start") => v.get("content_block").is_some_and(kept_block),
        Some("content_block_delta") => matches!(
            v.pointer("/delta/type").and_then(Value::as_str),
            Some("text_delta" | "input_json_delta")
        ),
        Some("message_delta") => v
            .pointer("/delta/stop_reason")
            .and_then(Value::as_str)
            .is_none_or(|s| KEPT_STOPS.contains(&s)),
        _ => true,
    }
}

impl SseEvents for MessagesAsChunks {
    fn input(&mut self) -> &mut SseInput {
        &mut self.input
    }

    fn event(&mut self, ev: &SseEvent<'_>, out: &mut BytesMut) -> Result<(), ApiError> {
        if !kept_event(ev) {
            return Err(ApiError::bad_gateway(
                "The answer holds what a cached replay would not give back.",
            ));
        }
        write_data(&mut self.scratch, ev.event, ev.data);
        let chunk = self.scratch.split();
        self.inner.feed(&chunk, out)?;
        self.done = self.inner.is_done();
        Ok(())
    }

    fn done(&self) -> bool {
        self.done
    }

    fn usage_so_far(&self) -> Option<Usage> {
        self.inner.usage()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_replay_would_lose_is_not_kept() {
        let answer = |stop: &str, block: &str| {
            format!(
                r#"{{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{block}],"stop_reason":"{stop}","stop_sequence":null,"usage":{{"input_tokens":3,"output_tokens":2}}}}"#
            )
        };
        let text = r#"{"type":"text","text":"Hi"}"#;
        let c = whole_as_chat(answer("end_turn", text).as_bytes(), "pub").unwrap();
        let c: Value = serde_json::from_slice(&c).unwrap();
        assert_eq!(c["choices"][0]["message"]["content"], "Hi");
        assert!(whole_as_chat(answer("stop_sequence", text).as_bytes(), "pub").is_none());
        let thinking = r#"{"type":"thinking","thinking":"hm","signature":"s"}"#;
        assert!(whole_as_chat(answer("end_turn", thinking).as_bytes(), "pub").is_none());
        let cited = r#"{"type":"text","text":"Hi","citations":[{"type":"char_location"}]}"#;
        assert!(whole_as_chat(answer("end_turn", cited).as_bytes(), "pub").is_none());
    }

    #[test]
    fn a_thinking_stream_fails_the_side_translation() {
        let mut t = MessagesAsChunks::new("pub");
        let mut out = BytesMut::new();
        let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"usage\":{\"input_tokens\":3,\"output_tokens\":0}}}\n\n";
        assert!(StreamTranslator::feed(&mut t, start.as_bytes(), &mut out).is_ok());
        let thinking = "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n";
        assert!(StreamTranslator::feed(&mut t, thinking.as_bytes(), &mut out).is_err());
    }
}
