//! Guardrails: checks on what goes to a model (input) and what comes back (output).
//!
//! Operators declare named guardrails in the config ([`config`]): built-in detectors for
//! provider and cloud credentials (`secrets`), personal data (`pii`) and prompt injections
//! (`prompt_injection`), or their own `regex` patterns, each with an action — `block` the
//! request or answer, `redact` the match as `[REDACTED:<kind>]`, or just `log` it. A gateway
//! key selects a subset by name, resolved once into a [`Policy`].
//!
//! * Input: [`Policy::check_input`] walks the text-bearing fields of a request body (per
//!   [`InputApi`], or a guardrail's own JSONPath `fields`) and rewrites it in place.
//! * Output: [`Policy::output_scanner`] gives a streaming [`OutputScanner`] that releases text
//!   as soon as it cannot be part of a match, and [`Policy::check_output_text`] does the same
//!   on a whole text.
//!
//! Matching is linear-time (lazy DFAs from `regex-automata`), on the original text and, for
//! `prompt_injection` and `regex`, on a normalised view with a map back to the original (see
//! [`normalize`]): a match is always redacted over the exact original span. On input, runs of
//! 16 or more base64 or hex characters are also decoded once and the decoded text checked;
//! a match there is redacted by replacing the whole encoded run. `prompt_injection` (see
//! [`injection`]) also scans the other readings of an input string (percent-decoded, ROT13,
//! reversed, spaced out, nested encodings). Unicode tag characters are read as the ASCII they
//! spell and, with the other invisible carriers of [`hidden`], stripped by default from
//! requests and answers ([`Hidden`]). A `webhook` guardrail sends the text to an HTTP service
//! of the operator's and applies its verdict ([`webhook`]). [`corpus`] runs the guardrails
//! over a labelled corpus (`sluice guardrails test`).
//!
//! Verdicts and recorded actions name the guardrail and the kind of match, never the matched
//! text.

pub mod config;
pub mod corpus;
mod detectors;
mod engine;
mod hidden;
mod injection;
mod input;
pub mod jsonpath;
pub mod metrics;
mod normalize;
mod phone;
mod stream;
pub mod text;
pub mod webhook;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::Arc;

pub use config::{compile, compile_valid, RawGuardrail};
pub use hidden::{Filtered, HiddenFilter};
pub use input::InputApi;
pub use stream::{Channel, OutputScanner, Step};
pub use webhook::{Meta, StreamWindow, WebhookVerdict};

use crate::core::ConfigError;
use detectors::Detector;
use engine::{Engine, Hit, Scan};
use jsonpath::JsonPath;

/// What a guardrail does with a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Refuse the request, or stop the answer.
    Block,
    /// Replace the match by `[REDACTED:<kind>]`.
    Redact,
    /// Let the text through unchanged; record the match.
    Log,
}

/// What a guardrail does with hidden characters (Unicode tag characters and the other
/// invisible carriers of [`hidden`]) in the text it inspects, on input and output. Whatever
/// it does, the text they spell is scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hidden {
    /// Remove them from what goes upstream or to the client (the default).
    Strip,
    /// Refuse the request or stop the answer (kind `hidden_characters`).
    Block,
    /// Forward them unchanged.
    Keep,
}

/// One compiled guardrail.
#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) name: Arc<str>,
    pub(crate) action: Action,
    pub(crate) input: bool,
    pub(crate) output: bool,
    pub(crate) detectors: Vec<Arc<Detector>>,
    /// This guardrail's detectors alone (input checks run one guardrail at a time).
    pub(crate) engine: Arc<Engine>,
    pub(crate) fields: Option<Vec<JsonPath>>,
    pub(crate) hidden: Hidden,
    /// `type: webhook`: the service that judges the text (the rule has no detectors).
    pub(crate) webhook: Option<Arc<webhook::Webhook>>,
}

/// See [`Policy::fingerprint`]. Built from the rules' settings, never from compiled
/// automata or function addresses (which differ between processes).
fn fingerprint(rules: &[Arc<Rule>]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for r in rules {
        let head = format!(
            "rule\0{}\0{:?}\0{}\0{}\0{:?}\0{:?}\0{:?}\0",
            r.name,
            r.action,
            r.input,
            r.output,
            r.hidden,
            r.fields,
            r.webhook.as_ref().map(|w| w.fingerprint())
        );
        h.update(head.len().to_le_bytes());
        h.update(head.as_bytes());
        for d in &r.detectors {
            let det = format!(
                "det\0{}\0{:?}\0{}\0{}\0{}\0{:?}\0{:?}\0{:?}\0{}\0",
                d.kind,
                d.profile,
                d.pattern,
                d.max_len,
                d.max_orig,
                d.validate.as_ref().map(|c| &c.1),
                d.redact_tail,
                d.redact_head,
                d.deobfuscate
            );
            h.update(det.len().to_le_bytes());
            h.update(det.as_bytes());
        }
    }
    h.finalize().into()
}

/// Every guardrail of the config, by name.
#[derive(Debug, Default)]
pub struct Guardrails {
    rules: Vec<Arc<Rule>>,
}

impl Guardrails {
    /// The configured names, in config order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| &*r.name)
    }

    /// Whether no guardrail is configured.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Resolves a list of guardrail names (a key's `guardrails:` or `default_guardrails:`)
    /// into a policy. `path` is the key path of the list, e.g. `keys[3].guardrails`; an
    /// unknown or repeated name is an error at `path[i]`.
    pub fn policy(&self, names: &[String], path: &str) -> Result<Arc<Policy>, ConfigError> {
        let mut seen = HashSet::new();
        let mut rules = Vec::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            let Some(rule) = self.rules.iter().find(|r| &*r.name == n) else {
                let known: Vec<&str> = self.names().collect();
                return Err(ConfigError::new(
                    format!("{path}[{i}]"),
                    format!(
                        "unknown guardrail {n:?} (known guardrails: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            };
            if !seen.insert(n.as_str()) {
                return Err(ConfigError::new(
                    format!("{path}[{i}]"),
                    format!("guardrail {n:?} is listed twice"),
                ));
            }
            rules.push(rule.clone());
        }
        Policy::new(rules).map_err(|e| ConfigError::new(path, e))
    }
}

/// The guardrails that apply to one gateway key, ready to run.
#[derive(Debug)]
pub struct Policy {
    input: Vec<Arc<Rule>>,
    /// All output detectors of all output guardrails in one engine (possibly empty: webhook
    /// guardrails have none).
    output: Option<Arc<Engine>>,
    output_webhooks: Vec<Arc<webhook::Webhook>>,
    /// The answer's hidden characters: the strictest output guardrail's choice.
    output_hidden: Option<hidden::OutputHidden>,
    /// See [`Policy::fingerprint`].
    fingerprint: [u8; 32],
}

impl Policy {
    fn new(rules: Vec<Arc<Rule>>) -> Result<Arc<Policy>, String> {
        let input = rules.iter().filter(|r| r.input).cloned().collect();
        let mut entries = Vec::new();
        for r in rules.iter().filter(|r| r.output) {
            entries.extend(r.detectors.iter().map(|d| engine::Entry {
                det: d.clone(),
                guardrail: r.name.clone(),
                action: r.action,
            }));
        }
        let outputs: Vec<&Arc<Rule>> = rules.iter().filter(|r| r.output).collect();
        let output = if outputs.is_empty() {
            None
        } else {
            Some(Arc::new(Engine::new(entries)?))
        };
        let output_webhooks = outputs.iter().filter_map(|r| r.webhook.clone()).collect();
        // Block over strip over keep.
        let rank = |h: Hidden| match h {
            Hidden::Block => 2,
            Hidden::Strip => 1,
            Hidden::Keep => 0,
        };
        let output_hidden =
            outputs
                .iter()
                .max_by_key(|r| rank(r.hidden))
                .map(|r| hidden::OutputHidden {
                    mode: r.hidden,
                    guardrail: r.name.clone(),
                });
        Ok(Arc::new(Policy {
            input,
            output,
            output_webhooks,
            output_hidden,
            fingerprint: fingerprint(&rules),
        }))
    }

    /// The filter for hidden characters in one answer; `None` when no guardrail applies to
    /// output.
    pub fn hidden_filter(&self) -> Option<HiddenFilter> {
        self.output_hidden.clone().map(HiddenFilter::new)
    }

    /// A policy that checks nothing.
    pub fn empty() -> Arc<Policy> {
        Arc::new(Policy {
            input: Vec::new(),
            output: None,
            output_webhooks: Vec::new(),
            output_hidden: None,
            fingerprint: fingerprint(&[]),
        })
    }

    /// A digest of what this policy does — its guardrails in order, each with its action,
    /// directions, fields and patterns — the same in every process for the same config: the
    /// response cache keys answers by it, so that a changed policy never serves an answer
    /// another policy let through.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// Whether any guardrail applies to requests.
    pub fn has_input(&self) -> bool {
        !self.input.is_empty()
    }

    /// Whether any guardrail applies to answers.
    pub fn has_output(&self) -> bool {
        self.output.is_some()
    }

    /// A streaming scanner for one answer; `None` when no guardrail applies to output.
    pub fn output_scanner(&self) -> Option<OutputScanner> {
        self.output.as_ref().map(|e| OutputScanner::new(e.clone()))
    }

    /// Checks a whole answer text (a non-streamed message content).
    pub fn check_output_text(&self, text: &str) -> OutputVerdict {
        self.check_output(text, false)
    }

    /// Checks whole tool-call arguments (JSON text): as [`Policy::check_output_text`], but a
    /// redaction never cuts a JSON string escape in half.
    pub fn check_output_arguments(&self, args: &str) -> OutputVerdict {
        self.check_output(args, true)
    }

    fn check_output(&self, text: &str, json_safe: bool) -> OutputVerdict {
        let mut verdict = OutputVerdict {
            text: String::new(),
            findings: Vec::new(),
        };
        let Some(engine) = &self.output else {
            verdict.text = text.to_string();
            return verdict;
        };
        let scan = engine.with_scratch(|sc| engine.scan(sc, text, 0, true));
        let r = render(
            engine,
            text,
            0,
            text.len(),
            &scan.hits,
            json_safe,
            &mut verdict.text,
            &mut verdict.findings,
        );
        if r.is_some() {
            verdict.text.clear();
        }
        verdict
    }
}

pub use crate::core::Finding;

/// Adds a match of `kind` by `guardrail` to `findings`, merging with an earlier finding of
/// the same guardrail and action.
pub(crate) fn record(
    findings: &mut Vec<Finding>,
    guardrail: &Arc<str>,
    action: Action,
    kind: &Arc<str>,
) {
    if action == Action::Block {
        findings.push(Finding::Blocked {
            guardrail: guardrail.clone(),
            kind: kind.clone(),
        });
        return;
    }
    for f in findings.iter_mut() {
        match (f, action) {
            (
                Finding::Redacted {
                    guardrail: g,
                    kinds,
                },
                Action::Redact,
            )
            | (
                Finding::Logged {
                    guardrail: g,
                    kinds,
                },
                Action::Log,
            ) if g == guardrail => {
                if !kinds.contains(kind) {
                    kinds.push(kind.clone());
                }
                return;
            }
            _ => {}
        }
    }
    let kinds = vec![kind.clone()];
    findings.push(match action {
        Action::Redact => Finding::Redacted {
            guardrail: guardrail.clone(),
            kinds,
        },
        _ => Finding::Logged {
            guardrail: guardrail.clone(),
            kinds,
        },
    });
}

/// The outcome of [`Policy::check_input`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputVerdict {
    /// What was done, in order; empty when nothing matched. A block, if any, is last.
    pub findings: Vec<Finding>,
    /// Unicode tag characters were removed from the body.
    pub stripped: bool,
}

impl InputVerdict {
    /// Nothing matched.
    pub fn is_pass(&self) -> bool {
        self.findings.is_empty()
    }

    /// The blocking guardrail and kind, if the request must be refused.
    pub fn blocked(&self) -> Option<(&str, &str)> {
        self.findings.iter().find_map(|f| match f {
            Finding::Blocked { guardrail, kind } => Some((&**guardrail, &**kind)),
            _ => None,
        })
    }

    /// Whether a redaction rewrote the body.
    pub fn redacted(&self) -> bool {
        self.findings
            .iter()
            .any(|f| matches!(f, Finding::Redacted { .. }))
    }

    /// Whether the body was rewritten: redacted, or hidden characters stripped.
    pub fn changed(&self) -> bool {
        self.stripped || self.redacted()
    }
}

/// The outcome of a whole-text output check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputVerdict {
    /// The text to send, redactions applied; empty when blocked.
    pub text: String,
    /// What was done; a block, if any, is last.
    pub findings: Vec<Finding>,
}

impl OutputVerdict {
    /// The blocking guardrail and kind, if the answer must be stopped.
    pub fn blocked(&self) -> Option<(&str, &str)> {
        self.findings.iter().find_map(|f| match f {
            Finding::Blocked { guardrail, kind } => Some((&**guardrail, &**kind)),
            _ => None,
        })
    }
}

impl Engine {
    /// Records the redaction of entry `ei`'s match `start..end`. A detector with a redact
    /// tail keeps its context (`name =`) and redacts only the value after it; one with a
    /// redact head also redacts that many bytes at the start, as a hit of its own.
    pub(crate) fn push_redaction(
        &self,
        ei: usize,
        text: &str,
        start: usize,
        end: usize,
        out: &mut Scan,
    ) {
        let det = &self.entries[ei].det;
        let tail = match det.redact_tail {
            Some(n) if end >= start + n && text.is_char_boundary(end - n) => end - n,
            _ => start,
        };
        if let Some((n, _)) = &det.redact_head {
            let h = start + n;
            if tail > start && h <= tail && text.is_char_boundary(h) {
                out.hits.push(Hit {
                    start,
                    end: h,
                    entry: ei,
                    head: true,
                });
            }
        }
        out.hits.push(Hit {
            start: tail,
            end,
            entry: ei,
            head: false,
        });
    }
}

/// Moves a redaction span so that it neither starts nor ends inside a JSON string escape
/// (`\n`, `\"`, `\u00e9`): the text is JSON, and must stay JSON once redacted.
fn json_safe_span(text: &str, start0: usize, end0: usize) -> (usize, usize) {
    let (mut start, mut end) = (start0, end0);
    let b = text.as_bytes();
    let odd_backslashes_before =
        |i: usize| b[..i].iter().rev().take_while(|&&c| c == b'\\').count() % 2 == 1;
    // Starting on an escape letter, or inside the hex digits of `\uXXXX`.
    if start > 0 && odd_backslashes_before(start) {
        start += if b[start] == b'u' { 5 } else { 1 };
    } else {
        for k in 2..=5 {
            if start >= k
                && &b[start - k..start - k + 2] == b"\\u"
                && odd_backslashes_before(start - k + 1)
            {
                start = start - k + 6;
                break;
            }
        }
    }
    // Ending inside an escape.
    let mut i = start;
    while i < end {
        if b[i] == b'\\' {
            let len = if b.get(i + 1) == Some(&b'u') { 6 } else { 2 };
            if i + len > end {
                end = i;
                break;
            }
            i += len;
        } else {
            i += 1;
        }
    }
    let start = start.min(end);
    if text.is_char_boundary(start) && text.is_char_boundary(end) {
        (start, end)
    } else {
        (start0, end0)
    }
}

/// Writes `text[from..to]` to `out` with the redactions among `hits` applied, and records
/// every hit in `findings`. Returns the guardrail and kind of a block hit, if any (`out` is
/// then incomplete and must be discarded).
#[allow(clippy::too_many_arguments)]
pub(crate) fn render(
    engine: &Engine,
    text: &str,
    from: usize,
    to: usize,
    hits: &[Hit],
    json_safe: bool,
    out: &mut String,
    findings: &mut Vec<Finding>,
) -> Option<(Arc<str>, Arc<str>)> {
    let mut cursor = from;
    for h in hits {
        let e = &engine.entries[h.entry];
        let kind = match &e.det.redact_head {
            Some((_, k)) if h.head => k,
            _ => &e.det.kind,
        };
        record(findings, &e.guardrail, e.action, kind);
        match e.action {
            Action::Block => return Some((e.guardrail.clone(), kind.clone())),
            Action::Log => {}
            Action::Redact => {
                let (s, t) = if json_safe {
                    json_safe_span(text, h.start, h.end)
                } else {
                    (h.start, h.end)
                };
                if s < cursor || t <= s || t > to {
                    continue;
                }
                out.push_str(&text[cursor..s]);
                out.push_str("[REDACTED:");
                out.push_str(kind);
                out.push(']');
                cursor = t;
            }
        }
    }
    out.push_str(&text[cursor..to]);
    None
}
