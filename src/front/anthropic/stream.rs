//! An OpenAI chat-completion chunk stream → Anthropic's Messages stream events:
//! `message_start`, `ping`, per content block `content_block_start` / `content_block_delta`
//! (`text_delta` or `input_json_delta`) / `content_block_stop`, then `message_delta` (stop
//! reason and usage) and `message_stop`.
//!
//! `message_start` goes out with the first upstream chunk (its usage has `input_tokens` 0
//! unless that chunk already reports usage). `message_delta` waits for both the finish reason
//! and the usage chunk — or for `[DONE]` — so that it carries the real token counts, input
//! tokens included. Blocks are ordered by [`Blocks`](crate::front::blocks::Blocks).

use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};

use super::answer::{stop_reason, usage_json};
use crate::core::sse::SseEvent;
use crate::core::ApiError;
use crate::core::{SseEvents, SseInput, Usage};
use crate::front::blocks::{feed_delta, Blocks, Kind, Step};
use crate::front::{
    derive_id, first_choice, has_cached_field, read_event, usage_of, write_named, Upstream,
};

/// OpenAI chunk stream → Anthropic Messages stream; a
/// [`StreamTranslator`](crate::core::StreamTranslator). An `Err` is to be sent with
/// [`error_event`](super::answer::error_event), and ends the stream.
pub struct ChatToMessagesStream {
    input: SseInput,
    public_model: String,
    /// The message id, once `message_start` has been sent.
    id: Option<String>,
    blocks: Blocks,
    /// Whether each block (by index) is a tool_use block.
    is_tool: Vec<bool>,
    finish: Option<String>,
    usage: Option<Usage>,
    cached_field: bool,
    done: bool,
}

impl ChatToMessagesStream {
    /// A translator for an answer shown to the client as model `public_model`.
    pub fn new(public_model: &str) -> Self {
        ChatToMessagesStream {
            input: SseInput::new(),
            public_model: public_model.to_string(),
            id: None,
            blocks: Blocks::live_only(),
            is_tool: Vec::new(),
            finish: None,
            usage: None,
            cached_field: false,
            done: false,
        }
    }

    fn start(&mut self, upstream_id: Option<&str>, out: &mut BytesMut) {
        if self.id.is_some() {
            return;
        }
        let id = derive_id("msg_", upstream_id);
        let mut usage = usage_json(self.usage.unwrap_or_default(), self.cached_field);
        usage["output_tokens"] = Value::from(0);
        write_named(
            out,
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": self.public_model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": usage,
            }}),
        );
        write_named(out, "ping", &json!({"type": "ping"}));
        self.id = Some(id);
    }

    fn render(&mut self, steps: Vec<Step>, out: &mut BytesMut) {
        for step in steps {
            match step {
                Step::Start(i, kind) => {
                    let block = match kind {
                        Kind::Text => json!({"type": "text", "text": ""}),
                        Kind::Tool { id, name } => {
                            let id = if id.is_empty() {
                                let msg = self.id.as_deref().unwrap_or("msg_");
                                format!("toolu_{}_{i}", msg.trim_start_matches("msg_"))
                            } else {
                                id
                            };
                            json!({"type": "tool_use", "id": id, "name": name, "input": {}})
                        }
                    };
                    self.is_tool.push(block["type"] == "tool_use");
                    write_named(
                        out,
                        "content_block_start",
                        &json!({"type": "content_block_start", "index": i, "content_block": block}),
                    );
                }
                Step::Delta(i, s) => {
                    let delta = if self.is_tool.get(i) == Some(&true) {
                        json!({"type": "input_json_delta", "partial_json": s})
                    } else {
                        json!({"type": "text_delta", "text": s})
                    };
                    write_named(
                        out,
                        "content_block_delta",
                        &json!({"type": "content_block_delta", "index": i, "delta": delta}),
                    );
                }
                Step::Stop(i, _, _) => write_named(
                    out,
                    "content_block_stop",
                    &json!({"type": "content_block_stop", "index": i}),
                ),
            }
        }
    }

    fn end(&mut self, out: &mut BytesMut) {
        let mut steps = Vec::new();
        self.blocks.finish(&mut steps);
        self.render(steps, out);
        let usage = usage_json(self.usage.unwrap_or_default(), self.cached_field);
        write_named(
            out,
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason(self.finish.as_deref()), "stop_sequence": null},
                "usage": usage,
            }),
        );
        write_named(out, "message_stop", &json!({"type": "message_stop"}));
        self.done = true;
    }

    fn handle(&mut self, ev: &SseEvent<'_>, out: &mut BytesMut) -> Result<(), ApiError> {
        if self.done {
            return Ok(());
        }
        let chunk = match read_event(ev)? {
            Upstream::Done => {
                self.start(None, out);
                self.end(out);
                return Ok(());
            }
            Upstream::Chunk(c) => c,
        };
        if let Some(u) = usage_of(&chunk) {
            self.usage = Some(u);
            self.cached_field = has_cached_field(&chunk);
        }
        self.start(chunk.get("id").and_then(Value::as_str), out);
        if let Some(choice) = first_choice(&chunk) {
            let mut steps = Vec::new();
            if let Some(delta) = choice.get("delta") {
                feed_delta(&mut self.blocks, delta, &mut steps);
            }
            if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
                self.finish = Some(f.to_string());
                self.blocks.finish(&mut steps);
            }
            self.render(steps, out);
        }
        if self.finish.is_some() && self.usage.is_some() {
            self.end(out);
        }
        Ok(())
    }
}

impl SseEvents for ChatToMessagesStream {
    fn input(&mut self) -> &mut SseInput {
        &mut self.input
    }

    fn error_event(&mut self, e: &ApiError) -> Bytes {
        super::answer::error_event(e)
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
