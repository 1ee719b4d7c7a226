//! Output webhook guardrails: on a whole answer (every text of every choice in one call per
//! webhook), and on a stream through a [`Gate`] that holds what the translator produced until
//! the webhooks have approved the text in it.
//!
//! In a stream the output guardrail stage ([`super::guard_output`]) copies the text it
//! releases into a [`Tap`]; the relay passes every translated piece through the gate, which
//! sends it on at once when it carries no new text, and otherwise holds it until `window`
//! bytes of new text have gathered (or the answer ended), then asks the webhooks about the
//! answer so far. So nothing a webhook would block reaches the client, at the price of the
//! window's latency: text arrives in window-sized bursts.

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use serde_json::Value;

use super::plan::Plan;
use crate::core::sync::lock;
use crate::core::ApiError;
use crate::ctx::Ctx;
use crate::guardrails::{Meta, StreamWindow, WebhookVerdict};

/// Text released by the output guardrail stage and not yet taken by the gate.
pub(crate) type Tap = Arc<Mutex<String>>;

fn meta(ctx: &Ctx) -> Meta<'_> {
    Meta {
        model: ctx.model.as_deref().unwrap_or(""),
        key: ctx.key_name.as_deref().unwrap_or(""),
        request_id: &ctx.request_id,
    }
}

/// Applies the output webhooks to a whole chat completion (JSON) already through the other
/// output guardrails. A block (or a `fail_closed` webhook without a verdict) withholds every
/// choice's message, as a block of the built-in guardrails does.
pub(super) async fn whole(plan: &Plan, ctx: &mut Ctx, body: Bytes) -> Bytes {
    if plan.guardrails.output_webhooks().is_empty() {
        return body;
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(&body) else {
        return body;
    };
    let verdict = {
        let mut texts = super::guard_output::answer_texts(&mut v);
        // Boxed: the webhook client's state (connect, TLS, exchange) is several KiB that
        // every request's future would otherwise reserve, webhooks or not.
        Box::pin(plan.guardrails.check_output_webhooks(&mut texts, meta(ctx))).await
    };
    let stops = verdict.stops();
    let changed = verdict.changed;
    ctx.guardrails
        .extend(verdict.findings.into_iter().map(|f| ("output", f)));
    if stops {
        super::guard_output::withhold_all(&mut v);
    } else if !changed {
        return body;
    }
    Bytes::from(serde_json::to_vec(&v).expect("JSON values serialise"))
}

/// Holds a stream's translated pieces until the output webhooks approved their text.
pub(super) struct Gate {
    window: StreamWindow,
    tap: Tap,
    held: BytesMut,
}

impl Gate {
    /// The gate of a plan whose key has output webhooks, and the tap for its guardrail stage.
    pub(super) fn new(plan: &Plan) -> Option<(Gate, Tap)> {
        let window = plan.guardrails.stream_window()?;
        let tap = Tap::default();
        let gate = Gate {
            window,
            tap: tap.clone(),
            held: BytesMut::new(),
        };
        Some((gate, tap))
    }

    /// Takes what the translator just produced from `out` and puts back what may be sent:
    /// everything when no new text is waiting or the webhooks approved it, nothing while a
    /// window fills. `end`: the answer is complete. On a block the held pieces are dropped
    /// and the error to end the stream with is returned.
    pub(super) async fn pass(
        &mut self,
        out: &mut BytesMut,
        end: bool,
        ctx: &mut Ctx,
    ) -> Result<(), ApiError> {
        self.held.unsplit(out.split());
        let text = std::mem::take(&mut *lock(&self.tap));
        self.window.push(&text);
        if self.window.unchecked() > 0 {
            if !self.window.due(end) {
                return Ok(());
            }
            // Boxed, as in `whole`: only a stream with webhooks pays for their state.
            let verdict = Box::pin(self.window.check(meta(ctx))).await;
            if let Some(e) = self.refusal(verdict, ctx) {
                self.held.clear();
                return Err(e);
            }
        }
        out.unsplit(self.held.split());
        Ok(())
    }

    fn refusal(&self, verdict: WebhookVerdict, ctx: &mut Ctx) -> Option<ApiError> {
        let e = match (&verdict.blocked, &verdict.unavailable) {
            (Some((g, k)), _) => Some(ApiError::content_filter(g, k)),
            (None, Some(g)) => Some(ApiError::content_filter(
                g,
                crate::guardrails::webhook::UNAVAILABLE_KIND,
            )),
            _ => None,
        };
        ctx.guardrails
            .extend(verdict.findings.into_iter().map(|f| ("output", f)));
        e
    }
}
