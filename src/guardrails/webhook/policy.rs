//! Webhook guardrails in a [`Policy`]: input (once per request, over the strings each
//! guardrail inspects) and output (whole answers; streams through [`StreamWindow`]).

use std::sync::Arc;

use serde_json::Value;

use super::{redact, Effect, Meta, Webhook};
use crate::guardrails::input::select;
use crate::guardrails::{Finding, InputApi, Policy};

/// The outcome of the webhook guardrails on a request or an answer.
#[derive(Debug, Default)]
pub struct WebhookVerdict {
    /// What was done, in order; a block, if any, is last.
    pub findings: Vec<Finding>,
    /// The guardrail and kind that blocked.
    pub blocked: Option<(Arc<str>, Arc<str>)>,
    /// The guardrail that gave no verdict with `on_error: fail_closed`.
    pub unavailable: Option<Arc<str>>,
    /// Whether a redaction changed the texts.
    pub changed: bool,
}

impl WebhookVerdict {
    /// Whether the request or answer must not go on.
    pub fn stops(&self) -> bool {
        self.blocked.is_some() || self.unavailable.is_some()
    }

    /// Applies one webhook's effect; whether to go on with the next.
    fn apply(&mut self, w: &Webhook, effect: Effect, texts: &mut [&mut String]) -> bool {
        match effect {
            Effect::Pass => true,
            Effect::Block { kind } => {
                self.blocked = Some((w.name.clone(), kind));
                false
            }
            Effect::Unavailable => {
                self.unavailable = Some(w.name.clone());
                false
            }
            Effect::Redact(spans) => {
                for (i, t) in texts.iter_mut().enumerate() {
                    redact(t, i, &spans);
                }
                self.changed = true;
                true
            }
        }
    }
}

impl Policy {
    /// Whether a webhook guardrail applies to requests.
    pub fn has_input_webhooks(&self) -> bool {
        self.input.iter().any(|r| r.webhook.is_some())
    }

    /// The webhook guardrails that apply to answers.
    pub fn output_webhooks(&self) -> &[Arc<Webhook>] {
        &self.output_webhooks
    }

    /// Runs the input webhook guardrails, in policy order, over the strings each inspects
    /// (its `fields`, or the request's text), rewriting them on a redaction. Call it after
    /// [`Policy::check_input`]: the services see what would go upstream.
    pub async fn check_input_webhooks(
        &self,
        body: &mut Value,
        api: InputApi,
        meta: Meta<'_>,
    ) -> WebhookVerdict {
        let mut verdict = WebhookVerdict::default();
        for rule in &self.input {
            let Some(w) = &rule.webhook else {
                continue;
            };
            let mut texts: Vec<String> = Vec::new();
            select(rule, body, api, &mut |s: &mut String| texts.push(s.clone()));
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let r = w.verdict("input", &refs, meta).await;
            let effect = w.effect(r, &mut verdict.findings);
            let mut redacted = None;
            if let Effect::Redact(spans) = &effect {
                redacted = Some(spans.clone());
            }
            if !verdict.apply(w, effect, &mut []) {
                return verdict;
            }
            if let Some(spans) = redacted {
                let mut i = 0;
                select(rule, body, api, &mut |s: &mut String| {
                    redact(s, i, &spans);
                    i += 1;
                });
            }
        }
        verdict
    }

    /// Runs the output webhook guardrails over an answer's texts, rewriting them on a
    /// redaction.
    pub async fn check_output_webhooks(
        &self,
        texts: &mut [&mut String],
        meta: Meta<'_>,
    ) -> WebhookVerdict {
        let mut verdict = WebhookVerdict::default();
        for w in &self.output_webhooks {
            let refs: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
            let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
            let r = w.verdict("output", &refs, meta).await;
            let effect = w.effect(r, &mut verdict.findings);
            if !verdict.apply(w, effect, texts) {
                break;
            }
        }
        verdict
    }

    /// A window over a streamed answer for the output webhooks; `None` when there are none.
    pub fn stream_window(&self) -> Option<StreamWindow> {
        let window = self.output_webhooks.iter().map(|w| w.window).min()?;
        let keep = self
            .output_webhooks
            .iter()
            .map(|w| w.max_text_bytes)
            .min()
            .unwrap_or(window);
        Some(StreamWindow {
            webhooks: self.output_webhooks.clone(),
            text: String::new(),
            unchecked: 0,
            window,
            keep,
        })
    }
}

/// The text of a streamed answer as the output webhooks see it: the answer so far (its last
/// `max_text_bytes`), checked every `window` bytes of new text and at the end. A redact
/// verdict cannot rewrite text already encoded for the client, so in a stream it blocks.
#[derive(Debug)]
pub struct StreamWindow {
    webhooks: Vec<Arc<Webhook>>,
    text: String,
    unchecked: usize,
    window: usize,
    keep: usize,
}

impl StreamWindow {
    /// Adds released answer text.
    pub fn push(&mut self, t: &str) {
        self.text.push_str(t);
        self.unchecked += t.len();
        if self.text.len() > 2 * self.keep {
            let mut cut = self.text.len() - self.keep;
            while !self.text.is_char_boundary(cut) {
                cut += 1;
            }
            self.text.drain(..cut);
        }
    }

    /// Bytes of text not yet checked.
    pub fn unchecked(&self) -> usize {
        self.unchecked
    }

    /// Whether a check is due: a full window, or the end (`end`) with text unchecked.
    pub fn due(&self, end: bool) -> bool {
        self.unchecked >= self.window || (end && self.unchecked > 0)
    }

    /// Checks the answer so far with every webhook.
    pub async fn check(&mut self, meta: Meta<'_>) -> WebhookVerdict {
        self.unchecked = 0;
        let mut start = self.text.len().saturating_sub(self.keep);
        while !self.text.is_char_boundary(start) {
            start += 1;
        }
        let text = &self.text[start..];
        let mut verdict = WebhookVerdict::default();
        for w in &self.webhooks {
            let r = w.verdict("output", &[text], meta).await;
            let effect = match w.effect(r, &mut verdict.findings) {
                Effect::Redact(spans) => {
                    let kind = spans[0].kind.clone();
                    // Recorded as redacted by `effect`; in a stream it is a block.
                    verdict.findings.retain(|f| f.guardrail() != &*w.name);
                    crate::guardrails::record(
                        &mut verdict.findings,
                        &w.name,
                        crate::guardrails::Action::Block,
                        &kind,
                    );
                    Effect::Block { kind }
                }
                e => e,
            };
            if !verdict.apply(w, effect, &mut []) {
                break;
            }
        }
        verdict
    }
}
