//! Settle: what the request cost, once its answer is over. The limits permit is charged the
//! provider's reported usage (or the estimate, when the report is partial). Usage and
//! guardrail findings are recorded on the request context here, where the access log and
//! metrics read them; later per-request consumers (cache store, traces) attach here, each as
//! one call. The usage ledger records from the request's end in `server/proxy.rs` instead,
//! next to the access log: requests refused before this stage are recorded too.

use crate::core::{ApiError, StreamTranslator};
use crate::ctx::Ctx;
use crate::limits::{Permit, Usage as LimitUsage};
use crate::pipeline::gateway::Gateway;

/// Settles the request's limits permit.
pub(super) async fn settle(
    gw: &Gateway,
    ctx: &Ctx,
    permit: Option<Permit>,
    result: &Result<(), ApiError>,
    estimate: u64,
) {
    let Some(mut p) = permit else { return };
    // Charged at the price of the deployment that answered, as the ledger records it.
    if let Some(price) = gw.cfg.price_of(
        ctx.model.as_deref(),
        ctx.provider.as_deref(),
        ctx.upstream_model.as_deref(),
    ) {
        p.reprice(price);
    }
    // The provider's final report when there is one. A request that failed before any
    // answer costs nothing — unless the client left while a provider was working on it:
    // the provider may have generated the answer all the same, so the estimate stays
    // charged. An answer cut short (the client left, the stream broke) has only a partial
    // report — the provider may have generated more — so it keeps the estimate charged,
    // or what was reported if that is more.
    let usage = match (result, ctx.usage) {
        (_, Some(u)) if ctx.usage_final || u.total_tokens > estimate => Some(LimitUsage::of(&u)),
        (Err(_), None) if !(ctx.client_gone && ctx.attempts > 0) => Some(LimitUsage::default()),
        _ => None,
    };
    p.settle(usage).await;
}

/// Records what a streamed answer reported: usage, and what output guardrails did.
pub(super) fn record_stream(ctx: &mut Ctx, translator: &dyn StreamTranslator) {
    ctx.usage = translator.usage();
    ctx.usage_final = translator.is_done();
    ctx.guardrails
        .extend(translator.findings().into_iter().map(|f| ("output", f)));
    if let Some(t) = ctx.sampled_trace() {
        t.finish_reasons = translator.finish_reasons();
    }
}
