//! Webhook guardrails (`type: webhook`): the text goes to an HTTP service the operator runs
//! — a classifier model, a PII analyser, a vendor API — and its verdict is applied. The
//! contract (request and response bodies, errors) is in `docs/guardrails-webhook.md`.
//!
//! A call is one POST with a timeout; its verdict is cached by SHA-256 of (guardrail,
//! direction, texts) for `cache_ttl`. A call that fails — connection, status other than 2xx,
//! a body that is not a verdict, the timeout, text over `max_text_bytes` — is decided by
//! `on_error`: `fail_closed` (the default) refuses, `fail_open` lets the text through; both
//! are counted and recorded (kind `webhook_unavailable`).

mod cache;
mod config;
mod http;
mod policy;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub(crate) use config::parse;
pub use policy::{StreamWindow, WebhookVerdict};

use super::{record, Action, Finding};
use crate::core::secret::Secret;
use cache::Cache;

/// Most findings of one verdict that are applied.
pub(crate) const MAX_FINDINGS: usize = 256;
/// Largest response body read from a webhook.
const MAX_RESPONSE_BYTES: usize = 64 << 10;
/// The kind recorded when a webhook could not give a verdict.
pub const UNAVAILABLE_KIND: &str = "webhook_unavailable";

/// What a failed call means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Let the text through.
    FailOpen,
    /// Refuse the request, or withhold the answer.
    FailClosed,
}

/// One webhook guardrail, ready to call.
#[derive(Debug)]
pub struct Webhook {
    pub(crate) name: Arc<str>,
    target: http::Target,
    headers: Vec<(String, Secret)>,
    timeout: Duration,
    pub(crate) on_error: OnError,
    /// `action: log`: verdicts are recorded, never applied.
    pub(crate) log_only: bool,
    pub(crate) max_text_bytes: usize,
    /// Bytes of streamed answer text per call.
    pub(crate) window: usize,
    cache: Cache,
}

impl Webhook {
    /// What decides this webhook's verdicts, for the policy fingerprint (the response
    /// cache's key): where it is and how its answers are applied; never its headers.
    pub(crate) fn fingerprint(&self) -> String {
        format!(
            "{:?}\0{:?}\0{}\0{}\0{}",
            self.target, self.on_error, self.log_only, self.max_text_bytes, self.window
        )
    }
}

/// What the service answered, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allow,
    Block { kind: Arc<str> },
    Redact { spans: Vec<Span> },
}

/// A span to redact: `text`'s characters `start..end` (Unicode scalar values, not bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) text: usize,
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) kind: Arc<str>,
}

/// Who a call is for: sent along so the service can log or decide by them.
#[derive(Debug, Clone, Copy)]
pub struct Meta<'a> {
    pub model: &'a str,
    pub key: &'a str,
    pub request_id: &'a str,
}

/// Why a call gave no verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    Timeout,
    Error(String),
}

/// A verdict applied: what the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    Pass,
    Block {
        kind: Arc<str>,
    },
    Redact(Vec<Span>),
    /// No verdict and `fail_closed`.
    Unavailable,
}

impl Webhook {
    /// The verdict on `texts`, from the cache or the service.
    pub(crate) async fn verdict(
        &self,
        direction: &'static str,
        texts: &[&str],
        meta: Meta<'_>,
    ) -> Result<Verdict, Failure> {
        let key = Cache::key(&self.name, direction, texts);
        if let Some(v) = self.cache.get(&key) {
            super::metrics::webhook_cache_hit(&self.name);
            return Ok(v);
        }
        let start = Instant::now();
        let r = if texts.iter().map(|t| t.len()).sum::<usize>() > self.max_text_bytes {
            Err(Failure::Error(format!(
                "text over max_text_bytes ({})",
                self.max_text_bytes
            )))
        } else {
            match tokio::time::timeout(self.timeout, self.call(direction, texts, meta)).await {
                Ok(r) => r.map_err(Failure::Error),
                Err(_) => Err(Failure::Timeout),
            }
        };
        let result = match &r {
            Ok(Verdict::Allow) => "allow",
            Ok(Verdict::Block { .. }) => "block",
            Ok(Verdict::Redact { .. }) => "redact",
            Err(Failure::Timeout) => "timeout",
            Err(Failure::Error(_)) => "error",
        };
        super::metrics::webhook(&self.name, result, start.elapsed().as_secs_f64());
        match &r {
            Ok(v) => self.cache.put(key, v.clone()),
            Err(f) => log::warn!(
                "request {}: webhook guardrail '{}' gave no verdict ({}); on_error: {}",
                meta.request_id,
                self.name,
                match f {
                    Failure::Timeout => format!("no answer within {:?}", self.timeout),
                    Failure::Error(e) => e.clone(),
                },
                if self.on_error == OnError::FailOpen {
                    "fail_open"
                } else {
                    "fail_closed"
                }
            ),
        }
        r
    }

    async fn call(
        &self,
        direction: &'static str,
        texts: &[&str],
        meta: Meta<'_>,
    ) -> Result<Verdict, String> {
        let body = json!({
            "guardrail": &*self.name,
            "direction": direction,
            "texts": texts,
            "text": texts.join("\n"),
            "model": meta.model,
            "key": meta.key,
            "request_id": meta.request_id,
        });
        let body = serde_json::to_vec(&body).expect("JSON values serialise");
        let (status, answer) =
            http::post(&self.target, &self.headers, &body, MAX_RESPONSE_BYTES).await?;
        if !(200..300).contains(&status) {
            return Err(format!("the service answered with status {status}"));
        }
        parse_verdict(&answer, texts)
    }

    /// Applies a call's outcome under `action` and `on_error`, recording what was done.
    pub(crate) fn effect(
        &self,
        r: Result<Verdict, Failure>,
        findings: &mut Vec<Finding>,
    ) -> Effect {
        let name = &self.name;
        match r {
            Ok(Verdict::Allow) => Effect::Pass,
            Ok(Verdict::Block { kind }) if self.log_only => {
                record(findings, name, Action::Log, &kind);
                Effect::Pass
            }
            Ok(Verdict::Block { kind }) => {
                record(findings, name, Action::Block, &kind);
                Effect::Block { kind }
            }
            Ok(Verdict::Redact { spans }) => {
                let action = if self.log_only {
                    Action::Log
                } else {
                    Action::Redact
                };
                for s in &spans {
                    record(findings, name, action, &s.kind);
                }
                if self.log_only {
                    Effect::Pass
                } else {
                    Effect::Redact(spans)
                }
            }
            Err(_) => {
                let kind: Arc<str> = UNAVAILABLE_KIND.into();
                if self.on_error == OnError::FailOpen {
                    record(findings, name, Action::Log, &kind);
                    Effect::Pass
                } else {
                    record(findings, name, Action::Block, &kind);
                    Effect::Unavailable
                }
            }
        }
    }
}

/// A kind named by the service, as recorded: letters, digits, `_`, `-`, `.`, at most 64;
/// anything else becomes `webhook`.
fn kind_of(v: Option<&Value>) -> Arc<str> {
    match v.and_then(Value::as_str) {
        Some(k)
            if !k.is_empty()
                && k.len() <= 64
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) =>
        {
            k.into()
        }
        _ => "webhook".into(),
    }
}

/// Reads the service's answer. A `redact` verdict without findings blocks (the service
/// flagged the text but said not where); a finding outside its text is an error.
fn parse_verdict(body: &[u8], texts: &[&str]) -> Result<Verdict, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| "the answer is not JSON".to_string())?;
    let verdict = v.get("verdict").and_then(Value::as_str);
    let findings = v.get("findings").and_then(Value::as_array);
    let first_kind = findings.and_then(|f| f.first()).and_then(|f| f.get("kind"));
    match verdict {
        Some("allow") => Ok(Verdict::Allow),
        Some("block") => Ok(Verdict::Block {
            kind: kind_of(v.get("kind").or(first_kind)),
        }),
        Some("redact") => {
            let spans = spans(findings.map(Vec::as_slice).unwrap_or(&[]), texts)?;
            if spans.is_empty() {
                return Ok(Verdict::Block {
                    kind: kind_of(v.get("kind")),
                });
            }
            Ok(Verdict::Redact { spans })
        }
        _ => Err("the answer has no verdict of allow, block or redact".into()),
    }
}

fn spans(findings: &[Value], texts: &[&str]) -> Result<Vec<Span>, String> {
    let mut out = Vec::new();
    for f in findings.iter().take(MAX_FINDINGS) {
        let num = |k: &str| f.get(k).and_then(Value::as_u64).map(|n| n as usize);
        let text = num("text").unwrap_or(0);
        let (Some(start), Some(end)) = (num("start"), num("end")) else {
            continue;
        };
        let chars = texts.get(text).map(|t| t.chars().count());
        if chars.is_none_or(|n| start >= end || end > n) {
            return Err("a finding's span is outside its text".into());
        }
        out.push(Span {
            text,
            start,
            end,
            kind: kind_of(f.get("kind")),
        });
    }
    Ok(out)
}

/// Replaces the spans of `spans` that fall in text `index` by `[REDACTED:<kind>]`
/// (overlapping spans are merged into the first).
pub(crate) fn redact(text: &mut String, index: usize, spans: &[Span]) {
    let mut mine: Vec<&Span> = spans.iter().filter(|s| s.text == index).collect();
    if mine.is_empty() {
        return;
    }
    mine.sort_by_key(|s| s.start);
    let bytes: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()))
        .collect();
    let mut out = String::with_capacity(text.len());
    let mut cursor = 0;
    for s in mine {
        let (a, b) = (
            bytes[s.start.min(bytes.len() - 1)],
            bytes[s.end.min(bytes.len() - 1)],
        );
        if a < cursor {
            continue;
        }
        out.push_str(&text[cursor..a]);
        out.push_str("[REDACTED:");
        out.push_str(&s.kind);
        out.push(']');
        cursor = b;
    }
    out.push_str(&text[cursor..]);
    *text = out;
}

#[cfg(test)]
mod tests;
