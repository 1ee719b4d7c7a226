//! An OpenAI chat-completion chunk stream → the Responses API's typed stream events, each
//! `event: <type>\ndata: {..., "type": <type>, "sequence_number": n}`:
//! `response.created`, `response.in_progress`; per text item `response.output_item.added`,
//! `response.content_part.added`, `response.output_text.delta`, `response.output_text.done`,
//! `response.content_part.done`, `response.output_item.done`; per function call
//! `response.output_item.added`, `response.function_call_arguments.delta`,
//! `response.function_call_arguments.done`, `response.output_item.done`; finally
//! `response.completed` (or `response.incomplete`) with the whole response and its usage,
//! sent once both the finish reason and the usage chunk — or `[DONE]` — have arrived.
//!
//! Output items are ordered by [`Blocks`](crate::front::blocks::Blocks); an item's `output_index`
//! is its block index.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Value};

use super::answer::{
    call_item, error_event_at, message_item, reasoning_tokens, response_object, status_of,
    usage_json,
};
use crate::core::sse::SseEvent;
use crate::core::ApiError;
use crate::core::{SseEvents, SseInput, Usage};
use crate::front::blocks::{feed_delta, Blocks, Kind, Step};
use crate::front::{derive_id, first_choice, read_event, usage_of, write_named, Upstream};
use crate::providers::unix_now;

/// OpenAI chunk stream → Responses stream events; a
/// [`StreamTranslator`](crate::core::StreamTranslator). An `Err` is to be sent with
/// [`ChatToResponsesStream::error_event`], and ends the stream.
pub struct ChatToResponsesStream {
    input: SseInput,
    public_model: String,
    /// The response id, once `response.created` has been sent.
    id: Option<String>,
    created_at: u64,
    seq: u64,
    blocks: Blocks,
    /// Per block index: the item id, and for a call its `call_id` and name.
    items: Vec<(String, Option<(String, String)>)>,
    /// Completed output items, in order.
    output: Vec<Value>,
    finish: Option<String>,
    usage: Option<Usage>,
    reasoning_tokens: u64,
    done: bool,
}

impl ChatToResponsesStream {
    /// A translator for an answer shown to the client as model `public_model`.
    pub fn new(public_model: &str) -> Self {
        ChatToResponsesStream {
            input: SseInput::new(),
            public_model: public_model.to_string(),
            id: None,
            created_at: 0,
            seq: 0,
            blocks: Blocks::default(),
            items: Vec::new(),
            output: Vec::new(),
            finish: None,
            usage: None,
            reasoning_tokens: 0,
            done: false,
        }
    }

    fn emit(&mut self, out: &mut BytesMut, kind: &str, mut v: Value) {
        v["type"] = Value::from(kind);
        v["sequence_number"] = Value::from(self.seq);
        self.seq += 1;
        write_named(out, kind, &v);
    }

    fn id(&self) -> &str {
        self.id.as_deref().unwrap_or("resp_")
    }

    fn base(&self) -> String {
        self.id().trim_start_matches("resp_").to_string()
    }

    fn snapshot(
        &self,
        status: &str,
        incomplete: Option<&str>,
        output: Vec<Value>,
        usage: Value,
    ) -> Value {
        response_object(
            self.id(),
            self.created_at,
            &self.public_model,
            status,
            incomplete,
            output,
            usage,
        )
    }

    fn start(&mut self, upstream_id: Option<&str>, created: Option<u64>, out: &mut BytesMut) {
        if self.id.is_some() {
            return;
        }
        self.id = Some(derive_id("resp_", upstream_id));
        self.created_at = created.unwrap_or_else(unix_now);
        let r = self.snapshot("in_progress", None, vec![], Value::Null);
        self.emit(out, "response.created", json!({"response": r}));
        let r = self.snapshot("in_progress", None, vec![], Value::Null);
        self.emit(out, "response.in_progress", json!({"response": r}));
    }

    fn item_status(&self) -> &'static str {
        match status_of(self.finish.as_deref()).0 {
            "completed" => "completed",
            _ => "incomplete",
        }
    }

    fn render(&mut self, steps: Vec<Step>, out: &mut BytesMut) {
        for step in steps {
            match step {
                Step::Start(i, Kind::Text) => self.start_text(i, out),
                Step::Start(i, Kind::Tool { id, name }) => self.start_call(i, id, name, out),
                Step::Delta(i, delta) => self.delta(i, &delta, out),
                Step::Stop(i, _, full) => self.stop(i, &full, out),
            }
        }
    }

    /// Text block `i` opens: a message item and its `output_text` part.
    fn start_text(&mut self, i: usize, out: &mut BytesMut) {
        let id = match i {
            0 => format!("msg_{}", self.base()),
            _ => format!("msg_{}_{i}", self.base()),
        };
        self.items.push((id.clone(), None));
        let item = message_item(&id, "in_progress", None);
        self.emit(
            out,
            "response.output_item.added",
            json!({"output_index": i, "item": item}),
        );
        self.emit(
            out,
            "response.content_part.added",
            json!({"item_id": id, "output_index": i, "content_index": 0,
                   "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}),
        );
    }

    /// Tool-call block `i` opens: a function-call item (a `call_id` made up if upstream gave
    /// none).
    fn start_call(&mut self, i: usize, id: String, name: String, out: &mut BytesMut) {
        let item_id = format!("fc_{}_{i}", self.base());
        let call_id = if id.is_empty() {
            format!("call_{}_{i}", self.base())
        } else {
            id
        };
        let item = call_item(&item_id, &call_id, &name, "", "in_progress");
        self.items.push((item_id, Some((call_id, name))));
        self.emit(
            out,
            "response.output_item.added",
            json!({"output_index": i, "item": item}),
        );
    }

    /// More text or arguments for block `i`.
    fn delta(&mut self, i: usize, delta: &str, out: &mut BytesMut) {
        let Some((item_id, call)) = self.items.get(i) else {
            return;
        };
        let (kind, v) = match call {
            None => (
                "response.output_text.delta",
                json!({"item_id": item_id, "output_index": i, "content_index": 0, "delta": delta, "logprobs": []}),
            ),
            Some(_) => (
                "response.function_call_arguments.delta",
                json!({"item_id": item_id, "output_index": i, "delta": delta}),
            ),
        };
        self.emit(out, kind, v);
    }

    /// Block `i` is complete with `full` text or arguments: its done events, and the item
    /// joins the output.
    fn stop(&mut self, i: usize, full: &str, out: &mut BytesMut) {
        let Some((item_id, call)) = self.items.get(i).cloned() else {
            return;
        };
        let status = self.item_status();
        let item = match call {
            None => {
                self.emit(
                    out,
                    "response.output_text.done",
                    json!({"item_id": item_id, "output_index": i, "content_index": 0, "text": full, "logprobs": []}),
                );
                self.emit(
                    out,
                    "response.content_part.done",
                    json!({"item_id": item_id, "output_index": i, "content_index": 0,
                           "part": {"type": "output_text", "text": full, "annotations": [], "logprobs": []}}),
                );
                message_item(&item_id, status, Some(full))
            }
            Some((call_id, name)) => {
                self.emit(
                    out,
                    "response.function_call_arguments.done",
                    json!({"item_id": item_id, "output_index": i, "name": name, "arguments": full}),
                );
                call_item(&item_id, &call_id, &name, full, status)
            }
        };
        self.output.push(item.clone());
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": i, "item": item}),
        );
    }

    fn end(&mut self, out: &mut BytesMut) {
        let mut steps = Vec::new();
        self.blocks.finish(&mut steps);
        self.render(steps, out);
        let (status, incomplete) = status_of(self.finish.as_deref());
        let usage = usage_json(self.usage.unwrap_or_default(), self.reasoning_tokens);
        let r = self.snapshot(status, incomplete, self.output.clone(), usage);
        let kind = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        self.emit(out, kind, json!({"response": r}));
        self.done = true;
    }

    /// The error as the stream's last events: `error` (numbered after the events already
    /// sent), then `response.failed` with the error and the items completed so far. A stream
    /// that has sent nothing yet first gets `response.created`, which the SDKs expect first.
    pub fn error_event(&mut self, e: &ApiError) -> Bytes {
        let mut out = BytesMut::new();
        self.start(None, None, &mut out);
        out.put_slice(&error_event_at(e, self.seq));
        self.seq += 1;
        let code = if e.status == 429 {
            "rate_limit_exceeded"
        } else {
            "server_error"
        };
        let mut r = self.snapshot("failed", None, self.output.clone(), Value::Null);
        r["error"] = json!({"code": code, "message": e.message});
        self.emit(&mut out, "response.failed", json!({"response": r}));
        self.done = true;
        out.freeze()
    }

    fn handle(&mut self, ev: &SseEvent<'_>, out: &mut BytesMut) -> Result<(), ApiError> {
        if self.done {
            return Ok(());
        }
        let chunk = match read_event(ev)? {
            Upstream::Done => {
                self.start(None, None, out);
                self.end(out);
                return Ok(());
            }
            Upstream::Chunk(c) => c,
        };
        if let Some(u) = usage_of(&chunk) {
            self.usage = Some(u);
            self.reasoning_tokens = reasoning_tokens(&chunk);
        }
        self.start(
            chunk.get("id").and_then(Value::as_str),
            chunk.get("created").and_then(Value::as_u64),
            out,
        );
        if let Some(choice) = first_choice(&chunk) {
            let mut steps = Vec::new();
            if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
                self.finish = Some(f.to_string());
            }
            if let Some(delta) = choice.get("delta") {
                feed_delta(&mut self.blocks, delta, &mut steps);
            }
            if self.finish.is_some() {
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

impl SseEvents for ChatToResponsesStream {
    fn input(&mut self) -> &mut SseInput {
        &mut self.input
    }

    fn error_event(&mut self, e: &ApiError) -> Bytes {
        ChatToResponsesStream::error_event(self, e)
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
