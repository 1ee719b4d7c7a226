//! The streaming output scanner.
//!
//! The answer arrives as decoded text per [`Channel`]. Each channel keeps a buffer of text not
//! yet released, plus one already-released character in front of it as look-behind context
//! (for word boundaries). After every push the engine scans the buffer (see [`super::engine`])
//! and reports the hold position: the first position where some detector's anchored search
//! is still alive at the end of the buffer, i.e. where a match may be in progress. Text before
//! it is released at once, with redactions applied; text from it on is held.
//!
//! Consequences, by construction:
//! * Text that cannot start a match is released in the same push: prose whose pushes end in
//!   whitespace or punctuation is released with zero hold-back. (Word characters at the end
//!   of a push can start an email address, and digits a phone or card number, so with `pii`
//!   active a trailing word or number is held until the next push shows where it ends.)
//! * A match split across any number of pushes is found exactly as in the whole text: the
//!   released text, concatenated, equals [`super::Policy::check_output_text`] of the whole.
//! * No part of a `block` match is ever released (it is held from its first character while in
//!   progress, and the block fires before anything after the hold is released).
//! * The hold-back is bounded: a detector's anchored search gives up after its maximum match
//!   length (`max_match_len` for `regex`, a fixed bound per built-in detector; four times that
//!   in original bytes for normalised views), so the buffer never exceeds
//!   [`OutputScanner::hold_limit`] plus one push.
//!
//! The caller decodes the provider's stream into `&str` pieces; splitting a UTF-8 character
//! across pieces is the caller's concern (it must carry incomplete bytes over itself).

use std::sync::Arc;

use super::engine::Engine;
use super::{render, Finding};

/// One independent text stream within an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// The assistant content of choice `choice`.
    Content { choice: u32 },
    /// The arguments of tool call `index` of choice `choice` (JSON text: redactions never cut
    /// a string escape in half).
    ToolArgs { choice: u32, index: u32 },
    /// Another text field of choice `choice` (reasoning, refusal…), numbered by the caller.
    Text { choice: u32, field: u8 },
}

/// What a push or finish lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Text that may be sent now (possibly empty), redactions applied.
    Release(String),
    /// The answer must be stopped. Sticky: every later call returns it again.
    Block { guardrail: Arc<str>, kind: Arc<str> },
}

#[derive(Debug)]
struct ChannelState {
    channel: Channel,
    /// Released context (`buf[..ctx]`, at most one character) then held text.
    buf: String,
    ctx: usize,
}

/// Scans one streamed answer. Created by [`super::Policy::output_scanner`].
#[derive(Debug)]
pub struct OutputScanner {
    engine: Arc<Engine>,
    channels: Vec<ChannelState>,
    findings: Vec<Finding>,
    blocked: Option<(Arc<str>, Arc<str>)>,
}

impl OutputScanner {
    pub(crate) fn new(engine: Arc<Engine>) -> OutputScanner {
        OutputScanner {
            engine,
            channels: Vec::new(),
            findings: Vec::new(),
            blocked: None,
        }
    }

    /// Feeds the next piece of a channel's text.
    pub fn push(&mut self, channel: Channel, text: &str) -> Step {
        self.process(channel, text, false)
    }

    /// Ends a channel: everything still held is decided and released (or blocks).
    pub fn finish(&mut self, channel: Channel) -> Step {
        self.process(channel, "", true)
    }

    /// What the guardrails did so far (for the access log and metrics): names and kinds only.
    pub fn actions(&self) -> &[Finding] {
        &self.findings
    }

    /// Whether the answer was blocked.
    pub fn is_blocked(&self) -> bool {
        self.blocked.is_some()
    }

    /// The most bytes a channel holds back after a push (the buffer never exceeds this plus
    /// the latest push).
    pub fn hold_limit(&self) -> usize {
        self.engine.max_hold + 4
    }

    /// Bytes currently held for `channel` (context included).
    pub fn buffered(&self, channel: Channel) -> usize {
        self.channels
            .iter()
            .find(|c| c.channel == channel)
            .map_or(0, |c| c.buf.len())
    }

    fn block_step(&self) -> Option<Step> {
        self.blocked.as_ref().map(|(g, k)| Step::Block {
            guardrail: g.clone(),
            kind: k.clone(),
        })
    }

    fn process(&mut self, channel: Channel, text: &str, eof: bool) -> Step {
        if let Some(step) = self.block_step() {
            return step;
        }
        let idx = match self.channels.iter().position(|c| c.channel == channel) {
            Some(i) => i,
            None => {
                if eof {
                    return Step::Release(String::new());
                }
                self.channels.push(ChannelState {
                    channel,
                    buf: String::new(),
                    ctx: 0,
                });
                self.channels.len() - 1
            }
        };
        let state = &mut self.channels[idx];
        state.buf.push_str(text);
        let engine = &self.engine;
        let scan = engine.with_scratch(|sc| engine.scan(sc, &state.buf, state.ctx, eof));
        let json_safe = matches!(channel, Channel::ToolArgs { .. });
        let mut out = String::with_capacity(scan.hold.saturating_sub(state.ctx));
        if let Some(block) = render(
            &self.engine,
            &state.buf,
            state.ctx,
            scan.hold,
            &scan.hits,
            json_safe,
            &mut out,
            &mut self.findings,
        ) {
            self.blocked = Some(block);
            self.channels.clear();
            return self.block_step().unwrap_or(Step::Release(String::new()));
        }
        if eof {
            self.channels.swap_remove(idx);
        } else {
            // Keep the last released character as look-behind context.
            let hold = scan.hold;
            let keep = state.buf[..hold]
                .chars()
                .next_back()
                .map_or(0, char::len_utf8);
            state.buf.drain(..hold - keep);
            state.ctx = keep;
        }
        Step::Release(out)
    }
}
