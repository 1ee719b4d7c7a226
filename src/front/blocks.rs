//! Orders the content of an OpenAI chunk stream — text deltas and tool-call fragments — into
//! a strict sequence of blocks (start, deltas, stop; one block open at a time; indexes
//! increasing), the shape both Anthropic content blocks and Responses output items need.
//!
//! Text streams live until the first tool call starts; that call streams live too. From
//! then on, fragments of other tool calls and further text are held back and emitted, each as
//! one block with a single delta, when the answer ends ([`Blocks::finish`]). Upstreams that
//! send tool calls one after the other (OpenAI does) thus stream the first call live and the
//! others at the end; upstreams that interleave fragments of several calls lose nothing.

/// What a block holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    /// A tool call: its id and function name.
    Tool {
        id: String,
        name: String,
    },
}

/// One step of the block sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Block `index` opens.
    Start(usize, Kind),
    /// More text or argument JSON for block `index`.
    Delta(usize, String),
    /// Block `index` is complete; `full` is all its text or arguments.
    Stop(usize, Kind, String),
}

#[derive(Debug)]
struct Call {
    /// The upstream `tool_calls[].index`.
    upstream: u64,
    id: String,
    name: String,
    args: String,
    /// The block index while the call is live or after it was emitted.
    block: Option<usize>,
    closed: bool,
}

/// The block sequencer.
#[derive(Debug, Default)]
pub(crate) struct Blocks {
    next: usize,
    /// The open text block and its text so far.
    text: Option<(usize, String)>,
    /// The index in `calls` of the live tool call.
    live: Option<usize>,
    calls: Vec<Call>,
    held_text: String,
    /// Only what is still to be emitted is kept: a live block's text and arguments are not
    /// accumulated, and its [`Step::Stop`] carries an empty `full` (for encoders that never
    /// repeat a block's content, so that a long answer costs no memory).
    live_only: bool,
}

impl Blocks {
    /// A sequencer whose [`Step::Stop`]s carry no `full` content for blocks streamed live.
    pub fn live_only() -> Self {
        Blocks {
            live_only: true,
            ..Blocks::default()
        }
    }

    fn open(&mut self) -> usize {
        let i = self.next;
        self.next += 1;
        i
    }

    fn close_text(&mut self, steps: &mut Vec<Step>) {
        if let Some((i, text)) = self.text.take() {
            steps.push(Step::Stop(i, Kind::Text, text));
        }
    }

    /// A text delta.
    pub fn text(&mut self, t: &str, steps: &mut Vec<Step>) {
        if t.is_empty() {
            return;
        }
        if self.live.is_some() {
            self.held_text.push_str(t);
            return;
        }
        if self.text.is_none() {
            let i = self.open();
            steps.push(Step::Start(i, Kind::Text));
            self.text = Some((i, String::new()));
        }
        if let Some((i, text)) = &mut self.text {
            if !self.live_only {
                text.push_str(t);
            }
            steps.push(Step::Delta(*i, t.to_string()));
        }
    }

    /// A tool-call fragment: upstream index, and the id, name and arguments it carries.
    pub fn tool(
        &mut self,
        upstream: u64,
        id: Option<&str>,
        name: Option<&str>,
        args: &str,
        steps: &mut Vec<Step>,
    ) {
        let at = match self.calls.iter().position(|c| c.upstream == upstream) {
            Some(at) => at,
            None => {
                self.calls.push(Call {
                    upstream,
                    id: String::new(),
                    name: String::new(),
                    args: String::new(),
                    block: None,
                    closed: false,
                });
                self.calls.len() - 1
            }
        };
        let call = &mut self.calls[at];
        if call.closed {
            return; // a fragment after the answer ended: nothing can carry it any more
        }
        if call.block.is_none() {
            if let Some(id) = id.filter(|s| !s.is_empty()) {
                call.id = id.to_string();
            }
            if let Some(name) = name.filter(|s| !s.is_empty()) {
                call.name = name.to_string();
            }
        }
        if self.live == Some(at) {
            if !self.live_only {
                self.calls[at].args.push_str(args);
            }
            if !args.is_empty() {
                let i = self.calls[at].block.expect("a live call has a block");
                steps.push(Step::Delta(i, args.to_string()));
            }
            return;
        }
        self.calls[at].args.push_str(args);
        if self.live.is_none() {
            self.close_text(steps);
            let i = self.open();
            let call = &mut self.calls[at];
            call.block = Some(i);
            steps.push(Step::Start(i, kind_of(call)));
            if !call.args.is_empty() {
                steps.push(Step::Delta(i, call.args.clone()));
            }
            if self.live_only {
                call.args = String::new();
            }
            self.live = Some(at);
        }
    }

    /// The answer ended: closes the open block and emits everything held back.
    pub fn finish(&mut self, steps: &mut Vec<Step>) {
        self.close_text(steps);
        if let Some(at) = self.live.take() {
            let call = &mut self.calls[at];
            call.closed = true;
            let i = call.block.expect("a live call has a block");
            let kind = kind_of(call);
            steps.push(Step::Stop(i, kind, call.args.clone()));
        }
        for at in 0..self.calls.len() {
            if self.calls[at].closed {
                continue;
            }
            let i = self.open();
            let call = &mut self.calls[at];
            call.closed = true;
            call.block = Some(i);
            let kind = kind_of(call);
            steps.push(Step::Start(i, kind.clone()));
            if !call.args.is_empty() {
                steps.push(Step::Delta(i, call.args.clone()));
            }
            steps.push(Step::Stop(i, kind, call.args.clone()));
        }
        if !self.held_text.is_empty() {
            let text = std::mem::take(&mut self.held_text);
            self.text(&text, steps);
            self.close_text(steps);
        }
    }
}

fn kind_of(call: &Call) -> Kind {
    Kind::Tool {
        id: call.id.clone(),
        name: call.name.clone(),
    }
}

/// Feeds the content of one chunk's first choice (`delta.content`, `delta.refusal`,
/// `delta.tool_calls`) to the sequencer.
pub(crate) fn feed_delta(blocks: &mut Blocks, delta: &serde_json::Value, steps: &mut Vec<Step>) {
    use serde_json::Value;
    for key in ["content", "refusal"] {
        if let Some(t) = delta.get(key).and_then(Value::as_str) {
            blocks.text(t, steps);
        }
    }
    let calls = delta.get("tool_calls").and_then(Value::as_array);
    for (n, call) in calls.into_iter().flatten().enumerate() {
        let index = call
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(n as u64);
        let f = call.get("function");
        blocks.tool(
            index,
            call.get("id").and_then(Value::as_str),
            f.and_then(|f| f.get("name")).and_then(Value::as_str),
            f.and_then(|f| f.get("arguments"))
                .and_then(Value::as_str)
                .unwrap_or(""),
            steps,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(id: &str, name: &str) -> Kind {
        Kind::Tool {
            id: id.into(),
            name: name.into(),
        }
    }

    #[test]
    fn text_then_sequential_tools() {
        let mut b = Blocks::default();
        let mut s = Vec::new();
        b.text("Hi", &mut s);
        b.tool(0, Some("c1"), Some("f"), "{\"a\"", &mut s);
        b.tool(0, None, None, ":1}", &mut s);
        b.tool(1, Some("c2"), Some("g"), "{}", &mut s);
        b.finish(&mut s);
        assert_eq!(
            s,
            vec![
                Step::Start(0, Kind::Text),
                Step::Delta(0, "Hi".into()),
                Step::Stop(0, Kind::Text, "Hi".into()),
                Step::Start(1, tool("c1", "f")),
                Step::Delta(1, "{\"a\"".into()),
                Step::Delta(1, ":1}".into()),
                Step::Stop(1, tool("c1", "f"), "{\"a\":1}".into()),
                Step::Start(2, tool("c2", "g")),
                Step::Delta(2, "{}".into()),
                Step::Stop(2, tool("c2", "g"), "{}".into()),
            ]
        );
    }

    #[test]
    fn interleaved_fragments_and_late_text_are_held() {
        let mut b = Blocks::default();
        let mut s = Vec::new();
        b.tool(0, Some("c1"), Some("f"), "{", &mut s);
        b.tool(1, Some("c2"), Some("g"), "{", &mut s);
        b.tool(0, None, None, "}", &mut s);
        b.text("after", &mut s);
        b.tool(1, None, None, "}", &mut s);
        b.finish(&mut s);
        b.tool(0, None, None, "ignored", &mut s);
        b.finish(&mut s);
        // Live-only: the same deltas; live blocks' stops carry nothing.
        let mut lo = Blocks::live_only();
        let mut s2 = Vec::new();
        lo.tool(0, Some("c1"), Some("f"), "{", &mut s2);
        lo.tool(1, Some("c2"), Some("g"), "{", &mut s2);
        lo.tool(0, None, None, "}", &mut s2);
        lo.text("after", &mut s2);
        lo.tool(1, None, None, "}", &mut s2);
        lo.finish(&mut s2);
        let strip = |steps: &[Step]| -> Vec<Step> {
            steps
                .iter()
                .map(|st| match st {
                    Step::Stop(i, k, _) => Step::Stop(*i, k.clone(), String::new()),
                    o => o.clone(),
                })
                .collect()
        };
        assert_eq!(strip(&s2), strip(&s[..10]));
        assert_eq!(s2[3], Step::Stop(0, tool("c1", "f"), String::new()));
        assert_eq!(lo.calls[0].args, "", "a live call's arguments are not kept");
        assert!(lo.text.is_none() && lo.held_text.is_empty());
        assert_eq!(
            s,
            vec![
                Step::Start(0, tool("c1", "f")),
                Step::Delta(0, "{".into()),
                Step::Delta(0, "}".into()),
                Step::Stop(0, tool("c1", "f"), "{}".into()),
                Step::Start(1, tool("c2", "g")),
                Step::Delta(1, "{}".into()),
                Step::Stop(1, tool("c2", "g"), "{}".into()),
                Step::Start(2, Kind::Text),
                Step::Delta(2, "after".into()),
                Step::Stop(2, Kind::Text, "after".into()),
            ]
        );
    }
}
