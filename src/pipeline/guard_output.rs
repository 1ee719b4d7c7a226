//! Output guardrails on answers: a stage behind the stream translator that runs the key's
//! [`OutputScanner`] over the decoded text of every OpenAI chunk (content and tool-call
//! arguments) before the client sees it, and the same rules over whole answers.
//!
//! Text is held back only while it could still be part of a match (the scanner decides), so
//! ordinary prose flows through with the chunk that carried it. A chunk whose text was all
//! held back is not sent (unless it carries something else: a role, a tool call's id and
//! name, a finish reason); held text is released in a chunk of its own before the chunk that
//! finishes its choice. A block ends the stream at once with `finish_reason:
//! "content_filter"` and `[DONE]`, and asks the caller to close the provider's connection so
//! that no more tokens are generated.

use bytes::{BufMut, BytesMut};
use serde_json::{json, Map, Value};

use super::guard_webhook::Tap;
use crate::core::sse::{FeedError, SseParser};
use crate::core::sync::lock;
use crate::core::ApiError;
use crate::core::{StreamTranslator, Usage};
use crate::guardrails::{Channel, Filtered, Finding, HiddenFilter, OutputScanner, Policy, Step};

/// Text fields of an answer other than `content`, scanned as channels of their own: the
/// reasoning traces some providers return (`reasoning_content`: xAI, DeepSeek; `reasoning`:
/// Groq, OpenRouter) and refusals.
const TEXT_FIELDS: [&str; 3] = ["reasoning_content", "reasoning", "refusal"];

/// The channel of a legacy `function_call`'s arguments (one per choice).
const FUNCTION_CALL: u32 = u32::MAX;

/// Content given as an array of parts → its text (answers carry text only).
fn flatten_content(v: &mut Value) {
    if let Value::Array(parts) = v {
        let text: String = parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect();
        *v = Value::String(text);
    }
}

/// A stream translator whose output passes through the output guardrails.
pub(crate) struct GuardedStream {
    inner: Box<dyn StreamTranslator>,
    scanner: OutputScanner,
    /// Hidden characters in the released text (`hidden_characters`).
    hidden: Option<HiddenFilter>,
    /// Where released text is copied for the output webhooks' gate.
    tap: Option<Tap>,
    parser: SseParser,
    scratch: BytesMut,
    /// `id`, `object`, `created`, `model` of the last chunk, for the chunks made here.
    template: Map<String, Value>,
    /// Channels that may hold text, in the order they were first seen.
    channels: Vec<Channel>,
    done: bool,
    blocked: bool,
}

impl GuardedStream {
    pub(crate) fn new(inner: Box<dyn StreamTranslator>, scanner: OutputScanner) -> Self {
        GuardedStream {
            inner,
            scanner,
            hidden: None,
            tap: None,
            // The inner translator's events are bounded by the provider's (plus what it adds).
            parser: SseParser::new(2 * crate::core::sse::MAX_EVENT_BYTES),
            scratch: BytesMut::new(),
            template: Map::new(),
            channels: Vec::new(),
            done: false,
            blocked: false,
        }
    }

    /// Filters what the inner translator produced (complete OpenAI events) into `out`.
    fn process(&mut self, out: &mut BytesMut) {
        let data = self.scratch.split();
        // The inner translators write whole events, so nothing is left in the parser; an
        // event past the (doubled) provider limit cannot come from them.
        let mut parser = std::mem::take(&mut self.parser);
        let fed = parser.feed(&data, |ev| {
            if self.done {
                return Err(());
            }
            self.event(ev.data, out);
            Ok(())
        });
        self.parser = parser;
        if let Err(FeedError::TooLarge(_)) = fed {
            log::warn!("an event from the stream translator exceeded the guardrail stage's limit");
        }
    }

    /// Filters one event: `[DONE]`, a chunk whose texts pass through the scanner, or anything
    /// else, passed on as it is.
    fn event(&mut self, data: &[u8], out: &mut BytesMut) {
        if data == b"[DONE]" {
            return self.end(out);
        }
        let Ok(Value::Object(mut chunk)) = serde_json::from_slice::<Value>(data) else {
            write_raw(out, data);
            return;
        };
        for k in ["id", "object", "created", "model", "system_fingerprint"] {
            if let Some(v) = chunk.get(k) {
                self.template.insert(k.into(), v.clone());
            }
        }
        let mut choices = match chunk.remove("choices") {
            Some(Value::Array(c)) => c,
            other => {
                if let Some(c) = other {
                    chunk.insert("choices".into(), c);
                }
                write_chunk(out, &Value::Object(chunk));
                return;
            }
        };
        let mut finishing: Vec<(u32, Value)> = Vec::new();
        for choice in &mut choices {
            if !self.guard_choice(choice, &mut finishing, out) {
                return;
            }
        }
        choices.retain(|c| !is_empty_choice(c));
        if !choices.is_empty() || chunk.contains_key("usage") {
            chunk.insert("choices".into(), Value::Array(choices));
            write_chunk(out, &Value::Object(chunk));
        }
        self.finish_choices(finishing, out);
    }

    /// `[DONE]`: every choice has finished by now; anything still held goes out first.
    fn end(&mut self, out: &mut BytesMut) {
        for ch in std::mem::take(&mut self.channels) {
            if !self.flush(ch, out) {
                return;
            }
        }
        crate::core::sse::write_done(out);
        self.done = true;
    }

    /// Passes the texts of one choice's delta through the scanner, in place. A finish reason
    /// is taken out into `finishing`. `false` on a block (the stream has then been ended).
    fn guard_choice(
        &mut self,
        choice: &mut Value,
        finishing: &mut Vec<(u32, Value)>,
        out: &mut BytesMut,
    ) -> bool {
        let i = choice.get("index").and_then(Value::as_u64).unwrap_or(0) as u32;
        // A finishing choice: what its channels still hold goes out after this chunk's
        // text and before the finish reason.
        if let Some(f) = choice
            .get_mut("finish_reason")
            .filter(|f| !f.is_null())
            .map(Value::take)
        {
            finishing.push((i, f));
        }
        let Some(delta) = choice.get_mut("delta").and_then(Value::as_object_mut) else {
            return true;
        };
        if let Some(c) = delta.get_mut("content") {
            flatten_content(c);
        }
        for (ch, text) in delta_texts(i, delta) {
            match self.scan(ch, text) {
                Some(t) => *text = t,
                None => {
                    self.block(i, out);
                    return false;
                }
            }
        }
        true
    }

    /// For each choice that finished in this chunk: what its channels still hold, then a
    /// chunk with its finish reason.
    fn finish_choices(&mut self, finishing: Vec<(u32, Value)>, out: &mut BytesMut) {
        for (i, finish) in finishing {
            let (mine, others): (Vec<Channel>, Vec<Channel>) =
                self.channels.iter().partition(|c| choice_of(**c) == i);
            self.channels = others;
            for ch in mine {
                if !self.flush(ch, out) {
                    return;
                }
            }
            let mut c = self.chunk(i, json!({}), None);
            c["choices"][0]["finish_reason"] = finish;
            write_chunk(out, &c);
        }
    }

    /// Pushes text through the scanner: what may be released now, `None` on a block.
    fn scan(&mut self, ch: Channel, text: &str) -> Option<String> {
        if !self.channels.contains(&ch) {
            self.channels.push(ch);
        }
        let t = match self.scanner.push(ch, text) {
            Step::Release(t) => t,
            Step::Block { .. } => return None,
        };
        self.after_scan(ch, t, false)
    }

    /// Released text through the hidden-character filter (`end`: the channel ends), and
    /// copied to the tap. `None` on a block.
    fn after_scan(&mut self, ch: Channel, t: String, end: bool) -> Option<String> {
        let t = match &mut self.hidden {
            None => t,
            Some(h) => {
                let key = channel_key(ch);
                let mut t = match h.push(key, &t) {
                    Filtered::Pass(t) => t,
                    Filtered::Block { .. } => return None,
                };
                if end {
                    if let Filtered::Pass(rest) = h.finish(key) {
                        t.push_str(&rest);
                    }
                }
                t
            }
        };
        if let Some(tap) = &self.tap {
            lock(tap).push_str(&t);
        }
        Some(t)
    }

    /// Releases what a channel still holds, in a chunk of its own. `false` on a block (the
    /// stream has then been ended).
    fn flush(&mut self, ch: Channel, out: &mut BytesMut) -> bool {
        let released = match self.scanner.finish(ch) {
            Step::Release(t) => self.after_scan(ch, t, true),
            Step::Block { .. } => None,
        };
        let Some(text) = released else {
            self.block(choice_of(ch), out);
            return false;
        };
        if text.is_empty() {
            return true;
        }
        let delta = match ch {
            Channel::Content { .. } => json!({"content": text}),
            Channel::Text { field, .. } => json!({ TEXT_FIELDS[field as usize]: text }),
            Channel::ToolArgs {
                index: FUNCTION_CALL,
                ..
            } => json!({"function_call": {"arguments": text}}),
            Channel::ToolArgs { index, .. } => {
                json!({"tool_calls": [{"index": index, "function": {"arguments": text}}]})
            }
        };
        let c = self.chunk(choice_of(ch), delta, None);
        write_chunk(out, &c);
        true
    }

    fn block(&mut self, choice: u32, out: &mut BytesMut) {
        let c = self.chunk(choice, json!({}), Some("content_filter"));
        write_chunk(out, &c);
        crate::core::sse::write_done(out);
        self.done = true;
        self.blocked = true;
    }

    fn chunk(&self, choice: u32, delta: Value, finish: Option<&str>) -> Value {
        let mut c = self.template.clone();
        c.entry("object")
            .or_insert_with(|| Value::from("chat.completion.chunk"));
        c.insert(
            "choices".into(),
            json!([{"index": choice, "delta": delta, "logprobs": null, "finish_reason": finish}]),
        );
        Value::Object(c)
    }
}

/// The texts of choice `i`'s delta that the guardrails scan, each with its channel: content,
/// tool-call and legacy function-call arguments, and the [`TEXT_FIELDS`].
fn delta_texts(i: u32, delta: &mut Map<String, Value>) -> Vec<(Channel, &mut String)> {
    let mut texts: Vec<(Channel, &mut String)> = Vec::new();
    for (k, v) in delta.iter_mut() {
        match (k.as_str(), v) {
            ("content", Value::String(text)) => {
                texts.push((Channel::Content { choice: i }, text));
            }
            ("function_call", f) => {
                if let Some(Value::String(args)) = f.get_mut("arguments") {
                    let index = FUNCTION_CALL;
                    texts.push((Channel::ToolArgs { choice: i, index }, args));
                }
            }
            ("tool_calls", Value::Array(calls)) => {
                for call in calls.iter_mut() {
                    let index = call.get("index").and_then(Value::as_u64).unwrap_or(0) as u32;
                    if let Some(Value::String(args)) = call.pointer_mut("/function/arguments") {
                        texts.push((Channel::ToolArgs { choice: i, index }, args));
                    }
                }
            }
            (k, Value::String(text)) => {
                if let Some(field) = TEXT_FIELDS.iter().position(|f| *f == k) {
                    let field = field as u8;
                    texts.push((Channel::Text { choice: i, field }, text));
                }
            }
            _ => {}
        }
    }
    texts
}

/// A channel as the hidden-character filter's key.
fn channel_key(ch: Channel) -> u64 {
    let (kind, choice, index) = match ch {
        Channel::Content { choice } => (0u64, choice, 0),
        Channel::ToolArgs { choice, index } => (1, choice, index),
        Channel::Text { choice, field } => (2, choice, u32::from(field)),
    };
    (kind << 62) | (u64::from(choice & 0x3fff_ffff) << 32) | u64::from(index)
}

/// The choice a channel belongs to.
fn choice_of(ch: Channel) -> u32 {
    match ch {
        Channel::Content { choice }
        | Channel::ToolArgs { choice, .. }
        | Channel::Text { choice, .. } => choice,
    }
}

/// A choice whose delta carries nothing once held-back text is taken out.
fn is_empty_choice(c: &Value) -> bool {
    if c.get("finish_reason").is_some_and(|f| !f.is_null()) {
        return false;
    }
    let Some(delta) = c.get("delta").and_then(Value::as_object) else {
        return false;
    };
    delta.iter().all(|(k, v)| match (k.as_str(), v) {
        ("content", Value::String(s)) => s.is_empty(),
        (k, Value::String(s)) if TEXT_FIELDS.contains(&k) => s.is_empty(),
        ("function_call", Value::Object(f)) => f
            .iter()
            .all(|(k, v)| k == "arguments" && v.as_str().is_some_and(str::is_empty)),
        ("tool_calls", Value::Array(calls)) => calls.iter().all(|call| {
            call.as_object().is_some_and(|o| {
                o.iter().all(|(k, v)| match k.as_str() {
                    "index" => true,
                    "function" => v.as_object().is_some_and(|f| {
                        f.iter()
                            .all(|(k, v)| k == "arguments" && v.as_str().is_some_and(str::is_empty))
                    }),
                    _ => false,
                })
            })
        }),
        _ => v.is_null(),
    })
}

fn write_chunk(out: &mut BytesMut, v: &Value) {
    out.put_slice(b"data: ");
    serde_json::to_writer(out.writer(), v).expect("JSON values serialise");
    out.put_slice(b"\n\n");
}

fn write_raw(out: &mut BytesMut, data: &[u8]) {
    crate::core::sse::write_data(out, None, data);
}

impl StreamTranslator for GuardedStream {
    fn feed(&mut self, input: &[u8], out: &mut BytesMut) -> Result<(), ApiError> {
        if self.done {
            return Ok(());
        }
        let r = self.inner.feed(input, &mut self.scratch);
        self.process(out);
        r
    }

    fn finish(&mut self, out: &mut BytesMut) -> Result<(), ApiError> {
        if self.done {
            return Ok(());
        }
        let r = self.inner.finish(&mut self.scratch);
        self.process(out);
        r
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn usage(&self) -> Option<Usage> {
        self.inner.usage()
    }

    fn finish_reasons(&self) -> Vec<String> {
        self.inner.finish_reasons()
    }

    fn abandon_upstream(&self) -> bool {
        self.blocked
    }

    fn findings(&self) -> Vec<Finding> {
        let mut f = self.scanner.actions().to_vec();
        f.extend(self.hidden.as_ref().and_then(HiddenFilter::finding));
        f
    }

    fn error_event(&mut self, e: &ApiError) -> bytes::Bytes {
        self.inner.error_event(e)
    }
}

/// Wraps `translator` in the output guardrails of `policy`, when it has any; released text
/// is copied to `tap` when given (the output webhooks' gate).
pub(crate) fn guarded(
    translator: Box<dyn StreamTranslator>,
    policy: &Policy,
    tap: Option<Tap>,
) -> Box<dyn StreamTranslator> {
    match policy.output_scanner() {
        Some(scanner) => {
            let mut g = GuardedStream::new(translator, scanner);
            g.hidden = policy.hidden_filter();
            g.tap = tap;
            Box::new(g)
        }
        None => translator,
    }
}

#[cfg(test)]
mod tests;
mod whole;

pub(crate) use whole::{answer_texts, guard_completion, withhold_all};
