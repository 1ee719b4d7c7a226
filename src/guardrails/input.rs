//! Input checks: which strings of a request body are inspected, and how.
//!
//! Each guardrail runs over the strings its JSONPath `fields` select or, without `fields`,
//! over the text-bearing strings of the request per [`InputApi`]. Strings that hold JSON
//! (tool-call arguments) are parsed and their string leaves inspected; if anything is
//! redacted the JSON is written back compactly. Guardrails run in policy order; the first
//! block stops the check.

use serde_json::Value;

use super::engine::Scratch;
use super::{record, render, Action, InputVerdict, Policy, Rule};

/// Which request format a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputApi {
    /// OpenAI `/chat/completions`: `messages[*].content` (string or `text` parts) of every
    /// role, and `messages[*].tool_calls[*].function.arguments`.
    ChatCompletions,
    /// OpenAI `/embeddings`: `input` as a string or an array of strings (token arrays are
    /// not text and are skipped).
    Embeddings,
    /// Anthropic `/messages`: `system` (string or `text` blocks), `messages[*].content`
    /// (string or blocks: `text`, `tool_use.input` string leaves, `tool_result.content`).
    AnthropicMessages,
    /// OpenAI `/responses`: `instructions`, `input` (string or items: `content` string or
    /// `input_text`/`output_text` parts, `function_call.arguments`,
    /// `function_call_output.output`).
    Responses,
}

type Visit<'a> = dyn FnMut(&mut String) + 'a;

/// Calls `f` on every string in `v` — object keys and numbers included (a card number or a
/// secret can be either); a number or key that `f` changes is replaced by the new text.
fn leaves(v: &mut Value, f: &mut Visit) {
    leaves_except(v, &[], f);
}

/// [`leaves`], skipping the values (not the keys) of object members named in `skip`:
/// structural fields such as ids and types.
fn leaves_except(v: &mut Value, skip: &[&str], f: &mut Visit) {
    match v {
        Value::String(s) => f(s),
        Value::Number(n) => {
            let mut t = n.to_string();
            let before = t.clone();
            f(&mut t);
            if t != before {
                *v = Value::String(t);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| leaves_except(x, skip, f)),
        Value::Object(m) => {
            let entries: Vec<(String, Value)> = std::mem::take(m)
                .into_iter()
                .map(|(k, mut x)| {
                    let mut key = k.clone();
                    f(&mut key);
                    if !skip.contains(&k.as_str()) {
                        leaves_except(&mut x, skip, f);
                    }
                    (key, x)
                })
                .collect();
            m.extend(entries);
        }
        _ => {}
    }
}

/// Fields of content blocks and items that carry structure, not text.
const STRUCTURAL: &[&str] = &[
    "type",
    "id",
    "call_id",
    "tool_use_id",
    "status",
    "role",
    "media_type",
    "cache_control",
];

/// A string holding JSON: its string leaves, re-serialised if any changed; the string
/// itself if it is not JSON.
fn json_string(s: &mut String, f: &mut Visit) {
    match serde_json::from_str::<Value>(s) {
        Ok(mut v) if v.is_object() || v.is_array() => {
            let before = v.clone();
            leaves(&mut v, f);
            if v != before {
                if let Ok(t) = serde_json::to_string(&v) {
                    *s = t;
                }
            }
        }
        _ => f(s),
    }
}

fn get_str<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut String> {
    match v.get_mut(key) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

fn array<'a>(v: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    v.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flat_map(|a| a.iter_mut())
}

/// `content` as a string, or an array of parts whose text is under `text` (any part type
/// that has a string `text`: `text`, `input_text`, `output_text`).
fn content(v: &mut Value, f: &mut Visit) {
    match v {
        Value::String(s) => f(s),
        Value::Array(parts) => {
            for p in parts {
                if let Some(t) = get_str(p, "text") {
                    f(t);
                }
                if let Some(t) = get_str(p, "refusal") {
                    f(t);
                }
            }
        }
        _ => {}
    }
}

fn chat(body: &mut Value, f: &mut Visit) {
    for m in array(body, "messages") {
        if let Some(c) = m.get_mut("content") {
            content(c, f);
        }
        if let Some(r) = get_str(m, "refusal") {
            f(r);
        }
        for tc in array(m, "tool_calls") {
            if let Some(a) = tc.get_mut("function").and_then(|x| get_str(x, "arguments")) {
                json_string(a, f);
            }
        }
        if let Some(a) = m
            .get_mut("function_call")
            .and_then(|x| get_str(x, "arguments"))
        {
            json_string(a, f);
        }
    }
}

fn embeddings(body: &mut Value, f: &mut Visit) {
    match body.get_mut("input") {
        Some(Value::String(s)) => f(s),
        Some(Value::Array(items)) => {
            for i in items {
                if let Value::String(s) = i {
                    f(s);
                }
            }
        }
        _ => {}
    }
}

fn anthropic(body: &mut Value, f: &mut Visit) {
    if let Some(s) = body.get_mut("system") {
        content(s, f);
    }
    for m in array(body, "messages") {
        match m.get_mut("content") {
            Some(Value::String(s)) => f(s),
            Some(Value::Array(blocks)) => {
                for b in blocks {
                    match b.get("type").and_then(Value::as_str) {
                        Some("tool_use") => {
                            if let Some(i) = b.get_mut("input") {
                                leaves(i, f);
                            }
                        }
                        Some("tool_result") => {
                            if let Some(c) = b.get_mut("content") {
                                content(c, f);
                            }
                        }
                        // Pixels are not text.
                        Some("image") => {}
                        // `text`, and whatever else a block carries (documents, search
                        // results, …): every string but the structural ones.
                        _ => leaves_except(b, STRUCTURAL, f),
                    }
                }
            }
            _ => {}
        }
    }
}

fn responses(body: &mut Value, f: &mut Visit) {
    if let Some(s) = get_str(body, "instructions") {
        f(s);
    }
    match body.get_mut("input") {
        Some(Value::String(s)) => f(s),
        Some(Value::Array(items)) => {
            for it in items {
                match it.get("type").and_then(Value::as_str) {
                    Some("function_call") => {
                        if let Some(a) = get_str(it, "arguments") {
                            json_string(a, f);
                        }
                    }
                    Some("function_call_output") => match it.get_mut("output") {
                        Some(o @ Value::String(_)) | Some(o @ Value::Array(_)) => content(o, f),
                        _ => {}
                    },
                    None | Some("message") => {
                        if let Some(c) = it.get_mut("content") {
                            content(c, f);
                        }
                    }
                    // Other items (custom tool calls and outputs, reasoning summaries, …):
                    // every string but the structural ones.
                    Some(_) => leaves_except(it, STRUCTURAL, f),
                }
            }
        }
        _ => {}
    }
}

/// Calls `f` on every string of `body` that `rule` inspects.
fn select(rule: &Rule, body: &mut Value, api: InputApi, f: &mut Visit) {
    if let Some(paths) = &rule.fields {
        for p in paths {
            p.for_each_string(body, f);
        }
        return;
    }
    match api {
        InputApi::ChatCompletions => chat(body, f),
        InputApi::Embeddings => embeddings(body, f),
        InputApi::AnthropicMessages => anthropic(body, f),
        InputApi::Responses => responses(body, f),
    }
}

/// Runs of base64 (standard or URL-safe) or hex long enough to hide a phrase.
fn encoded_runs(s: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
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
fn decode(run: &str) -> Option<String> {
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
    // Encoded payloads, decoded once; a match replaces the whole run.
    let mut redact: Vec<(usize, usize, std::sync::Arc<str>)> = Vec::new();
    for (a, b) in encoded_runs(s) {
        let Some(decoded) = decode(&s[a..b]) else {
            continue;
        };
        let scan = engine.scan(sc, &decoded, 0, true);
        let Some(h) = scan.hits.first() else { continue };
        let e = &engine.entries[h.entry];
        record(&mut verdict.findings, &e.guardrail, e.action, &e.det.kind);
        match e.action {
            Action::Block => return true,
            Action::Redact => redact.push((a, b, e.det.kind.clone())),
            Action::Log => {}
        }
    }
    for (a, b, kind) in redact.into_iter().rev() {
        s.replace_range(a..b, &format!("[REDACTED:{kind}]"));
    }
    false
}

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
        verdict
    }
}
