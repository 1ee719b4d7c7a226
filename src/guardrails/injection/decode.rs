//! Obfuscation decoders for input text: the readings of a string an injection may hide in.
//!
//! Each decoder turns a string into one other reading, or nothing when it does not apply:
//! percent-decoding, ROT13, the text reversed, markup removed from inside words (HTML tags,
//! `**`, backticks), spaced-out letters joined (`i g n o r e`), and base64/hex runs decoded.
//! Readings are decoded again, up to [`MAX_DEPTH`] layers in all (base64 of ROT13 of…), with
//! at most [`MAX_READINGS`] readings per string, each of at most [`MAX_BYTES`]: the work per
//! string is a fixed multiple of its length. Leetspeak digits, homoglyphs and invisible
//! characters need no decoder: the folded view reads through them (see
//! [`crate::guardrails::normalize`]).

use std::sync::OnceLock;

use regex::Regex;

/// Layers of decoding applied on top of one another.
pub(crate) const MAX_DEPTH: usize = 3;
/// Readings produced per inspected string.
pub(crate) const MAX_READINGS: usize = 24;
/// Longest text decoded (bytes); the rest of a longer string is not decoded.
pub(crate) const MAX_BYTES: usize = 64 * 1024;

/// Every reading of `s` other than itself, up to the bounds above.
pub(crate) fn readings(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut layer: Vec<String> = vec![clip(s).to_string()];
    for _ in 0..MAX_DEPTH {
        let mut next = Vec::new();
        for t in &layer {
            for r in one_layer(t) {
                if out.len() + next.len() >= MAX_READINGS {
                    break;
                }
                if r != *t && r != s && !out.contains(&r) && !next.contains(&r) {
                    next.push(r);
                }
            }
        }
        if next.is_empty() {
            break;
        }
        out.extend(next.iter().cloned());
        layer = next;
    }
    out
}

/// `s` cut to at most [`MAX_BYTES`], on a character boundary.
fn clip(s: &str) -> &str {
    if s.len() <= MAX_BYTES {
        return s;
    }
    let mut end = MAX_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The readings one decoder layer gives.
fn one_layer(t: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(p) = percent(t) {
        out.push(p);
    }
    if let Some(m) = demarkup(t) {
        out.push(m);
    }
    if let Some(j) = join_spaced(t) {
        out.push(j);
    }
    if let Some(b) = encoded(t) {
        out.push(b);
    }
    if t.bytes().filter(u8::is_ascii_alphabetic).count() >= 8 {
        out.push(rot13(t));
        out.push(t.chars().rev().collect());
    }
    out
}

/// Percent-decoding, when the text has at least three `%XX` escapes.
fn percent(t: &str) -> Option<String> {
    let escapes = t
        .as_bytes()
        .windows(3)
        .filter(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
        .count();
    if escapes < 3 {
        return None;
    }
    let d = percent_encoding::percent_decode_str(t).decode_utf8_lossy();
    Some(d.replace('+', " "))
}

/// Markup removed: HTML tags, and `*`, `_`, `` ` ``, `~`, `|` between letters.
fn demarkup(t: &str) -> Option<String> {
    static TAG: OnceLock<Regex> = OnceLock::new();
    static INNER: OnceLock<Regex> = OnceLock::new();
    let tag = TAG.get_or_init(|| {
        Regex::new(r"</?[A-Za-z][A-Za-z0-9]{0,10}(?:\s[^<>]{0,80})?/?>").expect("static")
    });
    let inner = INNER.get_or_init(|| Regex::new(r"(\w)[*_`~|]+(\w)").expect("static"));
    let a = tag.replace_all(t, "");
    // Twice, so that `a*b*c` loses both marks (matches do not overlap).
    let b = inner.replace_all(&a, "$1$2");
    let c = inner.replace_all(&b, "$1$2");
    (c != t).then(|| c.into_owned())
}

/// Spaced-out letters joined: runs of two or more single characters separated by one
/// space, dot, dash or underscore become one word; a wider gap (two spaces, ` / `) between
/// runs stays a space.
fn join_spaced(t: &str) -> Option<String> {
    static SPACED: OnceLock<Regex> = OnceLock::new();
    let re = SPACED.get_or_init(|| Regex::new(r"(?:\b\w[ .\-_*])+\w\b").expect("static"));
    if !re.is_match(t) {
        return None;
    }
    let out = re.replace_all(t, |c: &regex::Captures| {
        c[0].chars()
            .filter(|c| c.is_alphanumeric())
            .collect::<String>()
    });
    Some(out.into_owned())
}

/// Base64 and hex runs of the text, decoded (see [`crate::guardrails::input`]).
fn encoded(t: &str) -> Option<String> {
    let mut out = String::new();
    for (a, b) in crate::guardrails::input::encoded_runs(t) {
        if let Some(d) = crate::guardrails::input::decode(&t[a..b]) {
            out.push_str(&d);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// ROT13 of the ASCII letters.
pub(crate) fn rot13(t: &str) -> String {
    t.chars()
        .map(|c| match c {
            'a'..='z' => (((c as u8 - b'a') + 13) % 26 + b'a') as char,
            'A'..='Z' => (((c as u8 - b'A') + 13) % 26 + b'A') as char,
            c => c,
        })
        .collect()
}
