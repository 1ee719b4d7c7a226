//! What the request path records for its trace: one entry per upstream attempt (begun before
//! it is sent, ended with its outcome), the `traceparent` the provider gets, and the answer's
//! finish reasons. Only ids, timings, statuses and labels; the spans are built when the
//! request ends (`crate::trace`).

use super::attempt::{Answered, AttemptError};
use crate::config::Deployment;
use crate::core::trace::{new_span_id, AttemptTrace};
use crate::core::{ApiError, StreamTranslator, Watch, Watched};
use crate::ctx::Ctx;
use crate::upstream::Outgoing;

/// Starts an attempt: its span when the trace is sampled. Returns the upstream status known
/// so far, put back by [`end`] if this attempt gets none.
pub(super) fn begin(ctx: &mut Ctx, deployment: &Deployment) -> Option<u16> {
    let start = ctx.start.elapsed();
    if let Some(t) = ctx.sampled_trace() {
        let provider = &deployment.provider;
        t.attempts.push(AttemptTrace {
            span_id: new_span_id(),
            provider: provider.name.clone(),
            system: crate::trace::provider_name(provider.kind),
            model: deployment.model.clone(),
            host: provider.base.host.clone(),
            port: provider.base.port,
            start,
            end: start,
            status: None,
            outcome: "pending",
            error: None,
        });
    }
    ctx.upstream_status.take()
}

/// Ends the attempt begun last with how it went (the outcomes of
/// `sluice_upstream_attempts_total`, plus `client_gone`).
pub(super) fn end(ctx: &mut Ctx, before: Option<u16>, result: &Result<Answered, AttemptError>) {
    let status = ctx.upstream_status;
    if status.is_none() {
        ctx.upstream_status = before;
    }
    let end = ctx.start.elapsed();
    let stream_error = ctx.error.map(str::to_string);
    let Some(a) = ctx
        .sampled_trace()
        .and_then(|t| t.attempts.last_mut())
        .filter(|a| a.outcome == "pending")
    else {
        return;
    };
    a.end = end;
    a.status = status;
    let label = |e: &ApiError| match status {
        Some(s) if s >= 400 => s.to_string(),
        _ => e.code.clone().unwrap_or_else(|| e.kind.to_string()),
    };
    (a.outcome, a.error) = match result {
        Ok(Answered::Complete) => ("success", None),
        Ok(Answered::StreamFailed) => ("stream_error", stream_error),
        Err(AttemptError::ClientGone) => ("client_gone", None),
        Err(AttemptError::Final(e)) => ("error", Some(label(e))),
        Err(AttemptError::Retry(e, _)) => ("retry", Some(label(e))),
    };
}

/// Adds `traceparent` (and the client's `tracestate`) for the attempt's span when tracing is
/// on, sampled or not: the provider continues the same trace, or learns it is not recorded.
pub(super) fn propagate<'a>(ctx: &'a Ctx, req: &mut Outgoing<'a>) {
    let Some(t) = &ctx.trace else { return };
    let span = t
        .attempts
        .last()
        .filter(|a| a.outcome == "pending")
        .map_or_else(new_span_id, |a| a.span_id);
    req.insert("traceparent", t.traceparent_for(&span));
    if let Some(state) = &t.tracestate {
        req.insert("tracestate", state.as_str());
    }
}

/// The finish reasons of a whole OpenAI completion, for a sampled trace.
pub(super) fn record_whole(ctx: &mut Ctx, completion: &[u8]) {
    let Some(t) = ctx.sampled_trace() else { return };
    #[derive(serde::Deserialize)]
    struct Choice {
        finish_reason: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Completion {
        #[serde(default)]
        choices: Vec<Choice>,
    }
    if let Ok(c) = serde_json::from_slice::<Completion>(completion) {
        t.finish_reasons = c
            .choices
            .into_iter()
            .filter_map(|c| c.finish_reason)
            .collect();
    }
}

/// Watches OpenAI chunks for their finish reasons.
#[derive(Default)]
pub(super) struct FinishWatch {
    reasons: Vec<String>,
}

/// `inner` watched for finish reasons.
pub(super) fn watch(inner: Box<dyn StreamTranslator>) -> Box<dyn StreamTranslator> {
    Box::new(Watched::new(inner, FinishWatch::default()))
}

/// The longest finish reason kept, and how many are kept (one per choice).
const MAX_REASON: usize = 32;
const MAX_REASONS: usize = 16;

impl FinishWatch {
    fn scan(&mut self, out: &[u8]) {
        const NEEDLE: &[u8] = b"\"finish_reason\"";
        let mut rest = out;
        while let Some(i) = rest.windows(NEEDLE.len()).position(|w| w == NEEDLE) {
            rest = &rest[i + NEEDLE.len()..];
            let value = rest.trim_ascii_start();
            let Some(value) = value.strip_prefix(b":").map(<[u8]>::trim_ascii_start) else {
                continue;
            };
            // `null` (not finished yet) and anything but a short string are skipped.
            let Some(value) = value.strip_prefix(b"\"") else {
                continue;
            };
            let Some(end) = value.iter().take(MAX_REASON + 1).position(|&b| b == b'"') else {
                continue;
            };
            if self.reasons.len() < MAX_REASONS {
                self.reasons
                    .push(String::from_utf8_lossy(&value[..end]).into_owned());
            }
        }
    }
}

impl Watch for FinishWatch {
    fn seen(&mut self, produced: &[u8], _end: bool) {
        self.scan(produced);
    }

    fn finish_reasons(&self) -> Option<Vec<String>> {
        Some(self.reasons.clone())
    }
}
