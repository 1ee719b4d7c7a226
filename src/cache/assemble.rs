//! A streamed answer made whole for the cache: [`tee`] passes an OpenAI chunk stream (or a
//! native one, turned into chunks beside) on unchanged and feeds a copy to an [`Assembler`],
//! which builds the chat completion the stream amounts to. Only a complete stream (`[DONE]`,
//! or every choice finished and the usage chunk seen) holding nothing the assembler
//! does not know how to put back (log probabilities, audio, provider extensions) becomes an
//! entry: an answer the cache cannot reproduce exactly is not cached.

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use serde_json::{json, Map, Value};

use crate::core::sse::{SseEvent, SseParser, MAX_EVENT_BYTES};
use crate::core::sync::lock;
use crate::core::{StreamTranslator, Watch, Watched};

/// The complete answer of one request, once known: the whole answer, or a stream made whole.
#[derive(Default)]
pub struct Capture(Mutex<Option<Bytes>>);

impl Capture {
    pub fn new() -> Arc<Capture> {
        Arc::new(Capture::default())
    }

    pub fn set(&self, completion: Bytes) {
        *lock(&self.0) = Some(completion);
    }

    pub fn take(&self) -> Option<Bytes> {
        lock(&self.0).take()
    }
}

/// The part of `parts` whose index (`index_of`) is `index`, made by `new` when it is new.
fn slot<T>(parts: &mut Vec<T>, index: u64, index_of: fn(&T) -> u64, new: fn(u64) -> T) -> &mut T {
    let pos = match parts.iter().position(|p| index_of(p) == index) {
        Some(p) => p,
        None => {
            parts.push(new(index));
            parts.len() - 1
        }
    };
    &mut parts[pos]
}

/// One tool call being assembled.
#[derive(Default)]
struct ToolCall {
    index: u64,
    id: Option<Value>,
    name: String,
    arguments: String,
}

/// One choice being assembled.
#[derive(Default)]
struct Choice {
    index: u64,
    content: Option<String>,
    refusal: Option<String>,
    tool_calls: Vec<ToolCall>,
    finish_reason: Value,
}

/// Builds a chat completion from its chunks.
pub struct Assembler {
    head: Map<String, Value>,
    choices: Vec<Choice>,
    usage: Option<Value>,
    done: bool,
    /// Something was seen that the completion could not hold: nothing is cached.
    spoiled: bool,
    size: usize,
    max: usize,
}

impl Assembler {
    /// An assembler that gives up on answers of more than `max` bytes.
    pub fn new(max: usize) -> Self {
        Assembler {
            head: Map::new(),
            choices: Vec::new(),
            usage: None,
            done: false,
            spoiled: false,
            size: 0,
            max,
        }
    }

    /// Takes one event of the stream.
    pub fn event(&mut self, ev: &SseEvent<'_>) {
        if self.spoiled || self.done {
            return;
        }
        self.size += ev.data.len();
        if self.size > self.max || ev.event.is_some() {
            self.spoiled = true;
            return;
        }
        if ev.data == b"[DONE]" {
            self.done = true;
            return;
        }
        match serde_json::from_slice::<Map<String, Value>>(ev.data) {
            Ok(chunk) => self.spoiled = self.chunk(chunk).is_none(),
            Err(_) => self.spoiled = true,
        }
    }

    /// Adds a chunk; `None` when it holds what a completion cannot.
    fn chunk(&mut self, chunk: Map<String, Value>) -> Option<()> {
        for (k, v) in chunk {
            match k.as_str() {
                "id" | "created" | "model" | "system_fingerprint" | "service_tier" => {
                    self.head.entry(k).or_insert(v);
                }
                "object" => {}
                "usage" if v.is_null() => {}
                "usage" => self.usage = Some(v),
                "choices" => {
                    for c in v.as_array()? {
                        self.choice(c.as_object()?)?;
                    }
                }
                _ => return None,
            }
        }
        Some(())
    }

    fn choice(&mut self, c: &Map<String, Value>) -> Option<()> {
        let index = c.get("index").and_then(Value::as_u64)?;
        let choice = slot(
            &mut self.choices,
            index,
            |c| c.index,
            |index| Choice {
                index,
                ..Choice::default()
            },
        );
        for (k, v) in c {
            match (k.as_str(), v) {
                ("index", _) | ("logprobs", Value::Null) | ("finish_reason", Value::Null) => {}
                ("finish_reason", v) => choice.finish_reason = v.clone(),
                ("delta", Value::Object(d)) => delta(choice, d)?,
                _ => return None,
            }
        }
        Some(())
    }

    /// Whether the answer is all there: the stream ended with `[DONE]`, or every choice has
    /// finished and the usage chunk — the last one a provider sends before `[DONE]` — has
    /// arrived (a client encoder that ends its stream there stops reading before `[DONE]`).
    fn complete(&self) -> bool {
        self.done
            || (self.usage.is_some()
                && !self.choices.is_empty()
                && self.choices.iter().all(|c| !c.finish_reason.is_null()))
    }

    /// The completion, when the stream is complete and all of it could be kept.
    pub fn completion(&self) -> Option<Bytes> {
        if !self.complete() || self.spoiled || self.choices.is_empty() {
            return None;
        }
        let mut c = self.head.clone();
        c.insert("object".into(), "chat.completion".into());
        let choices: Vec<Value> = self.choices.iter().map(message).collect();
        c.insert("choices".into(), Value::Array(choices));
        if let Some(u) = &self.usage {
            c.insert("usage".into(), u.clone());
        }
        serde_json::to_vec(&c).ok().map(Bytes::from)
    }
}

/// Adds a chunk's delta to its choice.
fn delta(choice: &mut Choice, d: &Map<String, Value>) -> Option<()> {
    for (k, v) in d {
        match (k.as_str(), v) {
            (_, Value::Null) | ("role", Value::String(_)) => {}
            ("content", Value::String(s)) => {
                choice.content.get_or_insert_with(String::new).push_str(s)
            }
            ("refusal", Value::String(s)) => {
                choice.refusal.get_or_insert_with(String::new).push_str(s)
            }
            ("tool_calls", Value::Array(calls)) => {
                for call in calls {
                    tool_call(choice, call.as_object()?)?;
                }
            }
            _ => return None,
        }
    }
    Some(())
}

fn tool_call(choice: &mut Choice, call: &Map<String, Value>) -> Option<()> {
    let index = call.get("index").and_then(Value::as_u64)?;
    let t = slot(
        &mut choice.tool_calls,
        index,
        |t| t.index,
        |index| ToolCall {
            index,
            ..ToolCall::default()
        },
    );
    for (k, v) in call {
        match (k.as_str(), v) {
            ("index", _) | (_, Value::Null) => {}
            ("type", Value::String(s)) if s == "function" => {}
            ("id", Value::String(_)) => t.id = Some(v.clone()),
            ("function", Value::Object(f)) => {
                for (fk, fv) in f {
                    match (fk.as_str(), fv) {
                        ("name", Value::String(s)) => t.name.push_str(s),
                        ("arguments", Value::String(s)) => t.arguments.push_str(s),
                        (_, Value::Null) => {}
                        _ => return None,
                    }
                }
            }
            _ => return None,
        }
    }
    Some(())
}

/// A choice of the completion.
fn message(c: &Choice) -> Value {
    let mut m = Map::new();
    m.insert("role".into(), "assistant".into());
    m.insert(
        "content".into(),
        c.content.clone().map_or(Value::Null, Value::String),
    );
    if let Some(r) = &c.refusal {
        m.insert("refusal".into(), Value::String(r.clone()));
    }
    if !c.tool_calls.is_empty() {
        let calls: Vec<Value> = c
            .tool_calls
            .iter()
            .map(|t| {
                json!({"id": t.id.clone().unwrap_or(Value::Null), "type": "function",
                       "function": {"name": t.name, "arguments": t.arguments}})
            })
            .collect();
        m.insert("tool_calls".into(), Value::Array(calls));
    }
    json!({"index": c.index, "message": m, "logprobs": null, "finish_reason": c.finish_reason})
}

/// What a cache-capturing stage watches: the OpenAI chunks its inner stage produces — or a
/// native stream, which a side translator turns into them — assembled into the completion
/// they amount to, left in the [`Capture`] once complete.
struct CaptureWatch {
    /// Native stream → OpenAI chunks, with its output buffer.
    side: Option<(Box<dyn StreamTranslator>, BytesMut)>,
    parser: SseParser,
    assembler: Assembler,
    capture: Arc<Capture>,
}

/// `inner` (producing OpenAI chunks) with its answer captured for the cache, up to `max`
/// bytes.
pub fn tee(
    inner: Box<dyn StreamTranslator>,
    capture: Arc<Capture>,
    max: usize,
) -> Box<dyn StreamTranslator> {
    tee_with(inner, None, capture, max)
}

/// `inner` (producing a native stream) with its answer captured for the cache, `side`
/// turning a copy into OpenAI chunks.
pub fn tee_beside(
    inner: Box<dyn StreamTranslator>,
    side: Box<dyn StreamTranslator>,
    capture: Arc<Capture>,
    max: usize,
) -> Box<dyn StreamTranslator> {
    tee_with(inner, Some(side), capture, max)
}

fn tee_with(
    inner: Box<dyn StreamTranslator>,
    side: Option<Box<dyn StreamTranslator>>,
    capture: Arc<Capture>,
    max: usize,
) -> Box<dyn StreamTranslator> {
    Box::new(Watched::new(
        inner,
        CaptureWatch {
            side: side.map(|s| (s, BytesMut::new())),
            parser: SseParser::new(MAX_EVENT_BYTES),
            assembler: Assembler::new(max),
            capture,
        },
    ))
}

impl Watch for CaptureWatch {
    fn seen(&mut self, produced: &[u8], end: bool) {
        let side_chunks = match &mut self.side {
            None => None,
            Some((side, sbuf)) => {
                let mut r = side.feed(produced, sbuf);
                if end && r.is_ok() {
                    r = side.finish(sbuf);
                }
                if r.is_err() {
                    self.assembler.spoiled = true;
                }
                Some(sbuf.split())
            }
        };
        let chunks: &[u8] = side_chunks.as_deref().unwrap_or(produced);
        let assembler = &mut self.assembler;
        let fed = self.parser.feed(chunks, |ev| {
            assembler.event(&ev);
            Ok::<(), ()>(())
        });
        if fed.is_err() {
            self.assembler.spoiled = true;
        }
        if self.assembler.spoiled {
            // Something after the answer looked complete (an error event, say) spoils it.
            self.capture.take();
        } else if let Some(c) = self.assembler.completion() {
            self.capture.set(c);
        }
    }

    fn failed(&mut self) {
        self.assembler.spoiled = true;
        self.capture.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assemble(stream: &str) -> Option<Value> {
        let mut a = Assembler::new(1 << 20);
        let mut p = SseParser::new(MAX_EVENT_BYTES);
        p.feed(stream.as_bytes(), |e| {
            a.event(&e);
            Ok::<(), ()>(())
        })
        .unwrap();
        a.completion().map(|b| serde_json::from_slice(&b).unwrap())
    }

    const CHUNKS: &str = concat!(
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n",
    );

    #[test]
    fn a_complete_stream_becomes_a_completion() {
        let c = assemble(&format!("{CHUNKS}data: [DONE]\n\n")).expect("complete");
        assert_eq!(c["object"], "chat.completion");
        assert_eq!(c["id"], "c1");
        assert_eq!(c["choices"][0]["message"]["content"], "Hello");
        assert_eq!(c["choices"][0]["finish_reason"], "stop");
        assert_eq!(c["usage"]["total_tokens"], 5);
    }

    #[test]
    fn a_stream_cut_before_its_usage_is_not_kept() {
        // Every choice finished, but the usage chunk (and [DONE]) never came.
        let cut = &CHUNKS[..CHUNKS.rfind("data: ").unwrap()];
        assert!(assemble(cut).is_none());
        let mid = &CHUNKS[..CHUNKS.find("\"finish_reason\":\"stop\"").unwrap()];
        assert!(assemble(mid).is_none());
    }

    #[test]
    fn finished_choices_and_the_usage_chunk_make_it_complete_before_done() {
        let c = assemble(CHUNKS).expect("complete without [DONE]");
        assert_eq!(c["choices"][0]["message"]["content"], "Hello");
        assert_eq!(c["usage"]["total_tokens"], 5);
    }

    #[test]
    fn what_a_completion_cannot_hold_spoils_it() {
        let odd = CHUNKS.replace(
            "\"finish_reason\":\"stop\"",
            "\"finish_reason\":\"stop\",\"logprobs\":{\"content\":[]}",
        );
        assert!(assemble(&format!("{odd}data: [DONE]\n\n")).is_none());
        let ext = CHUNKS.replace(
            "{\"content\":\"lo\"}",
            "{\"content\":\"lo\",\"reasoning_content\":\"x\"}",
        );
        assert!(assemble(&format!("{ext}data: [DONE]\n\n")).is_none());
    }

    #[test]
    fn tool_calls_are_joined() {
        let s = concat!(
            "data: {\"id\":\"c\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":\"t1\",\"type\":\"function\",\"function\":{\"name\":\"get\",\"arguments\":\"{\\\"a\"}}]},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"c\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\":1}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: [DONE]\n\n"
        );
        let c = assemble(s).expect("complete");
        let call = &c["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["id"], "t1");
        assert_eq!(call["function"]["name"], "get");
        assert_eq!(call["function"]["arguments"], "{\"a\":1}");
        assert!(c["choices"][0]["message"]["content"].is_null());
    }
}
