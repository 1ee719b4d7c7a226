//! Input checks: which strings of a request body are inspected, and how.
//!
//! Each guardrail runs over the strings its JSONPath `fields` select or, without `fields`,
//! over the text-bearing strings of the request per [`InputApi`]. Strings that hold JSON
//! (tool-call arguments) are parsed and their string leaves inspected; if anything is
//! redacted the JSON is written back compactly. Guardrails run in policy order; the first
//! block stops the check. Unicode tag characters are scanned as the ASCII they spell and,
//! by default, stripped from every string a guardrail inspects (see [`Hidden`]).

use serde_json::Value;

use std::sync::Arc;

use super::engine::Scratch;
use super::hidden;
use super::injection::decode::readings;
use super::normalize::{is_tag, tag_ascii};
use super::text::Visit;
use super::{record, render, Action, Hidden, InputVerdict, Policy, Rule};

/// Where the text of a client API's request is: a walker that calls its argument on every
/// string of the body that reaches the model. Each front door defines its own (e.g.
/// `front::openai::CHAT_INPUT`), built from the helpers in [`text`](super::text).
#[derive(Clone, Copy)]
pub struct InputApi(pub fn(&mut Value, &mut Visit));

impl std::fmt::Debug for InputApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InputApi")
    }
}

/// Calls `f` on every string of `body` that `rule` inspects.
pub(super) fn select(rule: &Rule, body: &mut Value, api: InputApi, f: &mut Visit) {
    if let Some(paths) = &rule.fields {
        for p in paths {
            p.for_each_string(body, f);
        }
        return;
    }
    (api.0)(body, f)
}

/// Runs of base64 (standard or URL-safe) or hex long enough to hide a phrase.
pub(crate) fn encoded_runs(s: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    use std::sync::OnceLock;
    static RUN: OnceLock<regex::Regex> = OnceLock::new();
    let re = RUN.get_or_init(|| regex::Regex::new(r"[A-Za-z0-9+/_-]{16,}={0,2}").expect("static"));
    re.find_iter(s).map(|m| (m.start(), m.end()))
}

/// Decodes a base64 or hex run leniently into the text it may hide: hex (an odd last digit
/// dropped), and base64 with either alphabet or a mix of both, at each of the four possible
/// alignments (a junk character in front shifts every group). Of every decoding, the
/// printable spans are kept — invalid UTF-8 and control bytes only separate them — so one
/// junk byte cannot hide the rest of a payload. `None` when nothing printable came out.
pub(crate) fn decode(run: &str) -> Option<String> {
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    use base64::engine::DecodePaddingMode;
    use base64::Engine as _;
    let cfg = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    let std = GeneralPurpose::new(&base64::alphabet::STANDARD, cfg);
    let mut out = String::new();
    let digits = run.trim_end_matches('=');
    if digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        let even = &digits[..digits.len() & !1];
        if let Ok(bytes) = hex::decode(even) {
            printable_spans(&bytes, &mut out);
        }
    }
    // One alphabet: URL-safe characters read as their standard twins.
    let unified: Vec<u8> = digits
        .bytes()
        .map(|b| match b {
            b'-' => b'+',
            b'_' => b'/',
            b => b,
        })
        .collect();
    for skip in 0..4 {
        let Some(rest) = unified.get(skip..) else {
            break;
        };
        // A trailing group of one character carries no whole byte and cannot decode.
        let rest = if rest.len() % 4 == 1 {
            &rest[..rest.len() - 1]
        } else {
            rest
        };
        if rest.len() < 8 {
            break;
        }
        if let Ok(bytes) = std.decode(rest) {
            printable_spans(&bytes, &mut out);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The shortest printable span of decoded bytes worth scanning.
const MIN_DECODED_SPAN: usize = 4;

/// Appends each printable span of `bytes` (valid UTF-8 without control characters other
/// than whitespace, at least [`MIN_DECODED_SPAN`] characters) to `out`, one per line.
fn printable_spans(bytes: &[u8], out: &mut String) {
    for chunk in bytes.utf8_chunks() {
        for span in chunk
            .valid()
            .split(|c: char| c.is_control() && !c.is_whitespace())
        {
            if span.trim().chars().count() >= MIN_DECODED_SPAN {
                out.push_str(span);
                out.push('\n');
            }
        }
    }
}

/// Checks one string against one guardrail; rewrites it on redaction. Returns true on block.
fn check_string(rule: &Rule, sc: &mut Scratch, s: &mut String, verdict: &mut InputVerdict) -> bool {
    let engine = &rule.engine;
    let scan = engine.scan(sc, s, 0, true);
    if !scan.hits.is_empty() {
        let mut out = String::with_capacity(s.len());
        if render(
            engine,
            s,
            0,
            s.len(),
            &scan.hits,
            false,
            &mut out,
            &mut verdict.findings,
        )
        .is_some()
        {
            return true;
        }
        if rule.action == Action::Redact {
            *s = out;
        }
    }
    if check_hidden(rule, sc, s, verdict) {
        return true;
    }
    // Encoded payloads, decoded once; a match replaces the whole run.
    let mut redact: Vec<(usize, usize, Arc<str>)> = Vec::new();
    for (a, b) in encoded_runs(s) {
        let Some(decoded) = decode(&s[a..b]) else {
            continue;
        };
        match check_decoded(rule, sc, &decoded, verdict) {
            Decoded::Block => return true,
            Decoded::Redact(kind) => redact.push((a, b, kind)),
            Decoded::Pass => {}
        }
    }
    for (a, b, kind) in redact.into_iter().rev() {
        s.replace_range(a..b, &format!("[REDACTED:{kind}]"));
    }
    check_readings(rule, sc, s, verdict)
}

/// Obfuscated readings of the string (percent-encoded, ROT13, reversed, spaced out, nested
/// encodings), for guardrails whose detectors ask for them; a match in a reading redacts
/// the whole string. Returns true on block.
fn check_readings(
    rule: &Rule,
    sc: &mut Scratch,
    s: &mut String,
    verdict: &mut InputVerdict,
) -> bool {
    if !rule.detectors.iter().any(|d| d.deobfuscate) {
        return false;
    }
    for r in readings(s) {
        match check_decoded(rule, sc, &r, verdict) {
            Decoded::Block => return true,
            Decoded::Redact(kind) => {
                *s = format!("[REDACTED:{kind}]");
                return false;
            }
            Decoded::Pass => {}
        }
    }
    false
}

/// What a match in decoded text means for the run it was decoded from.
enum Decoded {
    Block,
    /// Replace the run by `[REDACTED:<kind>]`.
    Redact(Arc<str>),
    Pass,
}

/// Scans text decoded from a run of a string, and records its first match.
fn check_decoded(rule: &Rule, sc: &mut Scratch, decoded: &str, v: &mut InputVerdict) -> Decoded {
    let engine = &rule.engine;
    let scan = engine.scan(sc, decoded, 0, true);
    let Some(h) = scan.hits.first() else {
        return Decoded::Pass;
    };
    let e = &engine.entries[h.entry];
    record(&mut v.findings, &e.guardrail, e.action, &e.det.kind);
    match e.action {
        Action::Block => Decoded::Block,
        Action::Redact => Decoded::Redact(e.det.kind.clone()),
        Action::Log => Decoded::Pass,
    }
}

/// Runs of Unicode tag characters in `s`, as byte ranges.
fn tag_runs(s: &str) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, c) in s.char_indices().filter(|(_, c)| is_tag(*c)) {
        match runs.last_mut() {
            Some(r) if r.1 == i => r.1 = i + c.len_utf8(),
            _ => runs.push((i, i + c.len_utf8())),
        }
    }
    runs
}

/// Hidden characters (see [`super::hidden`]): each run of tag characters is decoded to the
/// ASCII it spells, and each run of variation selectors to the bytes it carries, and scanned
/// on its own (the normalised views already read tag characters in place), then the rule's
/// `hidden_characters` applies: `block` refuses the request, `keep` forwards them (a
/// redacted run is replaced), and `strip` leaves them for `Policy::strip_hidden` once every
/// guardrail has run. Returns true on block.
fn check_hidden(rule: &Rule, sc: &mut Scratch, s: &mut String, verdict: &mut InputVerdict) -> bool {
    if !hidden::contains_hidden(s) {
        return false;
    }
    if rule.hidden == Hidden::Block {
        let kind: Arc<str> = HIDDEN_KIND.into();
        record(&mut verdict.findings, &rule.name, Action::Block, &kind);
        super::metrics::hidden(&rule.name, "input", "block");
        return true;
    }
    let tags = tag_runs(s).into_iter().map(|(a, b)| {
        let decoded: String = s[a..b].chars().filter_map(tag_ascii).collect();
        (a, b, decoded)
    });
    let selectors = hidden::selector_runs(s)
        .into_iter()
        .map(|(a, b)| (a, b, hidden::decode_selectors(&s[a..b])));
    let runs: Vec<(usize, usize, String)> = tags.chain(selectors).collect();
    let mut redact: Vec<(usize, usize, Arc<str>)> = Vec::new();
    for (a, b, decoded) in runs {
        match check_decoded(rule, sc, &decoded, verdict) {
            Decoded::Block => return true,
            Decoded::Redact(kind) => redact.push((a, b, kind)),
            Decoded::Pass => {}
        }
    }
    // Stripping waits until every guardrail has read them (see `Policy::check_input`).
    if rule.hidden == Hidden::Keep {
        redact.sort_by_key(|r| r.0);
        for (a, b, kind) in redact.into_iter().rev() {
            s.replace_range(a..b, &format!("[REDACTED:{kind}]"));
        }
    }
    false
}

/// The kind a `hidden_characters: block` refusal names.
pub(crate) const HIDDEN_KIND: &str = "hidden_characters";

impl Policy {
    /// Checks a request body of the given format, rewriting it in place when a guardrail
    /// redacts. On a block the body may have been partly redacted already and must not be
    /// forwarded.
    pub fn check_input(&self, body: &mut Value, api: InputApi) -> InputVerdict {
        let mut verdict = InputVerdict::default();
        for rule in &self.input {
            let blocked = rule.engine.with_scratch(|sc| {
                let mut blocked = false;
                select(rule, body, api, &mut |s: &mut String| {
                    if !blocked {
                        blocked = check_string(rule, sc, s, &mut verdict);
                    }
                });
                blocked
            });
            if blocked {
                return verdict;
            }
        }
        self.strip_hidden(body, api, &mut verdict);
        verdict
    }

    /// Removes the hidden characters from every string a `hidden_characters: strip`
    /// guardrail inspects: after all guardrails, so that each has read the hidden text.
    fn strip_hidden(&self, body: &mut Value, api: InputApi, verdict: &mut InputVerdict) {
        for rule in self.input.iter().filter(|r| r.hidden == Hidden::Strip) {
            let mut stripped = false;
            select(rule, body, api, &mut |s: &mut String| {
                stripped |= hidden::strip(s);
            });
            if stripped {
                verdict.stripped = true;
                super::metrics::hidden(&rule.name, "input", "strip");
            }
        }
    }
}
