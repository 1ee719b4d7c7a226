//! The built-in `prompt_injection` detector.
//!
//! Each kind is a set of signals, and each signal pairs a class of words with another class
//! of words — an override verb with what it overrides (`ignore` … `previous instructions`),
//! a persona framing with a removal of limits (`act as` … `without any filters`), an
//! extraction verb with what it extracts (`print` … `your system prompt`) — with a few words
//! allowed in between. A signal is specific enough to stand on its own, so a match is a hit;
//! the word classes, not exact phrases, are what generalise to reworded payloads.
//!
//! Kinds: `instruction_override`, `jailbreak` (persona and role-play families, "no limits"
//! framings), `goal_hijack` (new tasks without override wording), `prompt_extraction`,
//! `injection_marker` (chat-template tokens, fake role headers and notes addressed to the
//! model inside documents and tool results) and `exfiltration` (links and images that carry
//! data out). English signals are in [`en`]; Spanish, French, German, Portuguese, Italian,
//! Russian, Chinese and Japanese ones for overrides, extraction and personas in [`lang`].
//!
//! Signals run on the folded view (lower case, accents and invisible characters removed,
//! homoglyphs and leetspeak digits read as letters, one space between words; see
//! [`super::normalize`]), as lazy DFAs like every other detector: linear-time, and stepped
//! by the streaming scanner with a bounded hold-back. On input, obfuscated copies of the
//! text are scanned too (see [`decode`]).

pub(crate) mod decode;
mod en;
mod lang;

use super::detectors::Detector;
use super::normalize::{push_normalised, Profile};

/// Longest match of a signal, in bytes of the folded view.
const MAX_LEN: usize = 320;

/// A word of the folded view inside a gap (no sentence punctuation).
pub(crate) const W: &str = r"[^ .!?;]+ ";

/// One signal per entry: its kind and pattern.
type Signals = Vec<(&'static str, String)>;

/// The built-in `prompt_injection` detectors: one per kind, its signals in one automaton.
pub(crate) fn detectors() -> Vec<Detector> {
    let mut all: Signals = en::signals();
    all.extend(lang::signals());
    let mut kinds: Vec<&str> = Vec::new();
    for (k, _) in &all {
        if !kinds.contains(k) {
            kinds.push(k);
        }
    }
    let mut out: Vec<Detector> = kinds
        .iter()
        .map(|kind| {
            let pats: Vec<String> = all
                .iter()
                .filter(|(k, _)| k == kind)
                .map(|(_, p)| format!("(?:{})", fold_literal(p)))
                .collect();
            let mut d =
                Detector::new(kind, Profile::Fold, &pats.join("|"), MAX_LEN).expect("built-in");
            d.deobfuscate = true;
            d
        })
        .collect();
    // Role headers need line breaks, which the folded view does not keep.
    let mut d =
        Detector::new("injection_marker", Profile::Original, en::ROLE_LINES, 64).expect("built-in");
    d.deobfuscate = true;
    out.push(d);
    out
}

/// A pattern as the folded view reads it: every non-ASCII character (Cyrillic, accented
/// letters) folded like the text is; ASCII (the regex syntax) unchanged.
fn fold_literal(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            push_normalised(&mut out, c, Profile::Fold);
        }
    }
    out
}

/// `(?:a|b|c)` of a list of alternatives.
pub(crate) fn any(words: &[&str]) -> String {
    format!("(?:{})", words.join("|"))
}

/// Up to `n` words of any kind.
pub(crate) fn gap(n: usize) -> String {
    format!("(?:{W}){{0,{n}}}")
}
