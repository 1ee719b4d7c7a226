//! Invisible instruction carriers: characters that render as nothing (or reorder what is
//! shown) but are read by models, so text can be hidden in them.
//!
//! What is stripped (and, with `hidden_characters: block`, refused):
//! * Unicode tag characters, U+E0000–U+E007F ("ASCII smuggling": U+E0020–U+E007E spell ASCII);
//! * zero-width space U+200B, word joiner and invisible operators U+2060–U+2064, and U+FEFF
//!   (zero-width no-break space / byte-order mark);
//! * bidi embeddings, overrides and isolates, U+202A–U+202E and U+2066–U+2069 (they reorder
//!   what is displayed, "Trojan Source");
//! * runs of two or more variation selectors (U+FE00–U+FE0F, U+E0100–U+E01EF): one selector
//!   per character is how emoji and ideographic variants are chosen, a run is how bytes are
//!   smuggled (one byte per selector).
//!
//! Kept, because legitimate text needs them: zero-width joiner U+200D (emoji sequences,
//! Indic conjuncts), zero-width non-joiner U+200C (Persian, Indic scripts), the left-to-right
//! and right-to-left marks U+200E/U+200F, the soft hyphen, and a single variation selector.
//! For scanning, every view already reads tag characters as the ASCII they spell and drops the
//! zero-width and bidi characters ([`super::normalize`]); on input, variation-selector runs are
//! also decoded to the bytes they carry and scanned.

use std::sync::Arc;

use super::{Finding, Hidden};

/// Whether `c` is stripped wherever it stands.
pub(crate) fn is_carrier(c: char) -> bool {
    matches!(c,
        '\u{E0000}'..='\u{E007F}'
        | '\u{200B}'
        | '\u{2060}'..='\u{2064}'
        | '\u{FEFF}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}')
}

/// Whether `c` is a variation selector.
pub(crate) fn is_selector(c: char) -> bool {
    matches!(c, '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}')
}

/// The byte a variation selector carries in the usual smuggling scheme: U+FE00–U+FE0F are
/// 0–15, U+E0100–U+E01EF are 16–255.
fn selector_byte(c: char) -> Option<u8> {
    match c {
        '\u{FE00}'..='\u{FE0F}' => Some((c as u32 - 0xFE00) as u8),
        '\u{E0100}'..='\u{E01EF}' => Some((c as u32 - 0xE0100 + 16) as u8),
        _ => None,
    }
}

/// Runs of two or more variation selectors in `s`, as byte ranges.
pub(crate) fn selector_runs(s: &str) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize, usize)> = Vec::new();
    for (i, c) in s.char_indices().filter(|(_, c)| is_selector(*c)) {
        match runs.last_mut() {
            Some(r) if r.1 == i => {
                r.1 = i + c.len_utf8();
                r.2 += 1;
            }
            _ => runs.push((i, i + c.len_utf8(), 1)),
        }
    }
    runs.into_iter()
        .filter(|r| r.2 >= 2)
        .map(|r| (r.0, r.1))
        .collect()
}

/// The text a run of variation selectors carries (lossy UTF-8).
pub(crate) fn decode_selectors(run: &str) -> String {
    let bytes: Vec<u8> = run.chars().filter_map(selector_byte).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Whether `s` holds anything [`strip`] would remove.
pub(crate) fn contains_hidden(s: &str) -> bool {
    s.chars().any(is_carrier) || !selector_runs(s).is_empty()
}

/// Removes the carriers and selector runs from `s`; whether anything was removed.
pub(crate) fn strip(s: &mut String) -> bool {
    if !contains_hidden(s) {
        return false;
    }
    let runs = selector_runs(s);
    let mut out = String::with_capacity(s.len());
    let mut run = runs.iter().peekable();
    for (i, c) in s.char_indices() {
        while run.peek().is_some_and(|r| r.1 <= i) {
            run.next();
        }
        let in_run = run.peek().is_some_and(|r| r.0 <= i && i < r.1);
        if !in_run && !is_carrier(c) {
            out.push(c);
        }
    }
    *s = out;
    true
}

/// The output side: what the answer's hidden characters get, decided by the strictest of the
/// output guardrails (`block` over `strip` over `keep`), and the guardrail that decided it.
#[derive(Debug, Clone)]
pub(crate) struct OutputHidden {
    pub(crate) mode: Hidden,
    pub(crate) guardrail: Arc<str>,
}

/// What [`HiddenFilter`] made of a piece of text.
#[derive(Debug, PartialEq, Eq)]
pub enum Filtered {
    /// The text to send (stripped, or as it was).
    Pass(String),
    /// The answer must be stopped (`hidden_characters: block`).
    Block { guardrail: Arc<str>, kind: Arc<str> },
}

/// Applies the output guardrails' `hidden_characters` to an answer's texts, whole or streamed
/// per channel. A variation selector at the end of a streamed piece is held until the next
/// piece shows whether a run follows, so a run split across chunks is still found.
#[derive(Debug)]
pub struct HiddenFilter {
    cfg: OutputHidden,
    /// Per channel (by the caller's index): a held trailing selector, and whether the text
    /// sent last ended inside a run.
    held: Vec<(u64, String, bool)>,
    stripped: bool,
    blocked: bool,
}

impl HiddenFilter {
    pub(crate) fn new(cfg: OutputHidden) -> HiddenFilter {
        HiddenFilter {
            cfg,
            held: Vec::new(),
            stripped: false,
            blocked: false,
        }
    }

    /// A whole text.
    pub fn whole(&mut self, text: String) -> Filtered {
        self.apply(text)
    }

    /// The next piece of channel `ch`'s text.
    pub fn push(&mut self, ch: u64, text: &str) -> Filtered {
        if self.cfg.mode == Hidden::Keep {
            return Filtered::Pass(text.to_string());
        }
        let idx = match self.held.iter().position(|h| h.0 == ch) {
            Some(i) => i,
            None => {
                self.held.push((ch, String::new(), false));
                self.held.len() - 1
            }
        };
        let (_, held, in_run) = &mut self.held[idx];
        // The continuation of a run that began in an earlier piece goes too.
        let mut text = text;
        let mut dropped = false;
        if *in_run {
            let n: usize = text
                .chars()
                .take_while(|c| is_selector(*c))
                .map(char::len_utf8)
                .sum();
            dropped = n > 0;
            text = &text[n..];
            *in_run = text.is_empty();
        }
        let mut joined = std::mem::take(held);
        joined.push_str(text);
        // A trailing selector may start a run with the next piece: held until then.
        if let Some(last) = joined.chars().next_back().filter(|c| is_selector(*c)) {
            let cut = joined.len() - last.len_utf8();
            if joined[..cut].ends_with(is_selector) {
                *in_run = true;
            } else {
                *held = joined[cut..].to_string();
                joined.truncate(cut);
            }
        }
        if dropped {
            self.note_hidden();
            if self.cfg.mode == Hidden::Block {
                return self.block();
            }
        }
        self.apply(joined)
    }

    /// Ends channel `ch`: a held selector is released (a single one is kept).
    pub fn finish(&mut self, ch: u64) -> Filtered {
        match self.held.iter().position(|h| h.0 == ch) {
            Some(i) => {
                let (_, held, _) = self.held.swap_remove(i);
                Filtered::Pass(held)
            }
            None => Filtered::Pass(String::new()),
        }
    }

    /// Whether hidden characters were stripped from the answer.
    pub fn stripped(&self) -> bool {
        self.stripped
    }

    /// The finding to record, if the filter did anything.
    pub fn finding(&self) -> Option<Finding> {
        let kind: Arc<str> = super::input::HIDDEN_KIND.into();
        let guardrail = self.cfg.guardrail.clone();
        if self.blocked {
            return Some(Finding::Blocked { guardrail, kind });
        }
        None
    }

    fn note_hidden(&mut self) {
        if self.cfg.mode == Hidden::Strip && !self.stripped {
            self.stripped = true;
            super::metrics::hidden(&self.cfg.guardrail, "output", "strip");
        }
    }

    fn block(&mut self) -> Filtered {
        if !self.blocked {
            self.blocked = true;
            super::metrics::hidden(&self.cfg.guardrail, "output", "block");
        }
        Filtered::Block {
            guardrail: self.cfg.guardrail.clone(),
            kind: super::input::HIDDEN_KIND.into(),
        }
    }

    fn apply(&mut self, mut text: String) -> Filtered {
        match self.cfg.mode {
            Hidden::Keep => Filtered::Pass(text),
            Hidden::Block if contains_hidden(&text) => self.block(),
            Hidden::Block => Filtered::Pass(text),
            Hidden::Strip => {
                if strip(&mut text) {
                    self.note_hidden();
                }
                Filtered::Pass(text)
            }
        }
    }
}
