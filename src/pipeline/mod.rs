//! The request path, as named stages with typed hand-offs. [`handle`] is the recipe:
//!
//! ```text
//!  route (front door) ─► authenticate ─┬─► models (answered locally)
//!                                      └─► admit the key's rate ─► decode ─► input guardrails
//!                                          ─► admit tokens, budgets, model limits
//!                                          ─► response cache (a hit is served here) ─► dispatch
//!                                          (attempt loop: exchange ─► relay, whole or stream,
//!                                          output guardrails) ─► cache store ─► settle
//! ```
//!
//! | stage          | file             | hands on                                            |
//! |----------------|------------------|-----------------------------------------------------|
//! | route          | `front::route`   | the client's door and `Route`                       |
//! | authenticate   | `auth.rs`        | the key (`Key`)                                    |
//! | decode         | `decode.rs`      | a `decode::Request`: chat form (or raw body), route |
//! | input guard    | `guard_input.rs` | the request, redacted, or a refusal                 |
//! | admit          | `admit.rs`       | a limits permit and the token estimate              |
//! | dispatch       | `dispatch.rs`    | the `plan::Plan` tried on deployments in turn       |
//! | attempt        | `attempt.rs`     | one exchange → `Ok` or a typed `AttemptError`       |
//! | relay          | `relay.rs`       | the answer to the client, whole or streamed         |
//! | output guard   | `guard_output.rs`| a translator stage over OpenAI chunks               |
//! | cache          | `cache.rs`       | a cached answer served, or the live one stored      |
//! | settle         | `settle.rs`      | limits settled with the provider's usage            |
//!
//! [`handle`] returns `Err` only while nothing has been sent to the client; the caller then
//! renders the error in the client's shape. Once a response has started, failures are
//! reported in-band. Later features attach to `settle` (usage ledger, cache store). Traces:
//! `traced.rs` records each attempt on the context; the spans are built when the request
//! ends (`crate::trace`).

mod admit;
mod attempt;
mod auth;
pub mod body;
pub mod cache;
mod decode;
mod dispatch;
mod exchange;
pub mod gateway;
mod guard_input;
mod guard_output;
mod guard_webhook;
pub mod keyring;
mod models;
mod plan;
mod relay;
pub mod respond;
mod settle;
mod traced;

pub use auth::request_id;

use crate::core::ApiError;
use crate::ctx::Ctx;
use crate::downstream::Session;
use crate::front::{self, Endpoint, Route};
use crate::pipeline::gateway::Gateway;
use crate::pipeline::keyring::Key;

/// Serves one request.
pub async fn handle(
    gw: &Gateway,
    session: &mut Session<'_>,
    ctx: &mut Ctx,
) -> Result<(), ApiError> {
    let (front, route) = front::route(session.method().as_str(), session.uri().path());
    ctx.front = front;
    let key = auth::authenticate(gw, session)?;
    ctx.key_name = Some(key.name.clone());
    ctx.team = key.team.clone();
    match route? {
        Route::Proxy(endpoint) => proxy(gw, session, ctx, key, endpoint).await,
        Route::ListModels => {
            models::list(gw, session, ctx, key).await;
            Ok(())
        }
        Route::GetModel(id) => models::retrieve(gw, session, ctx, key, &id).await,
    }
}

/// A request for a provider, stage by stage.
async fn proxy(
    gw: &Gateway,
    session: &mut Session<'_>,
    ctx: &mut Ctx,
    key: &Key,
    endpoint: Endpoint,
) -> Result<(), ApiError> {
    if let Some(t) = ctx.trace.as_mut() {
        t.operation = match endpoint {
            Endpoint::Embeddings => Some("embeddings"),
            Endpoint::CountTokens => None,
            _ => Some("chat"),
        };
    }
    decode::check_encoding(session)?;
    // The key's request rate and concurrency come before anything of the body is read: a
    // client over them costs no body read, parse or scan.
    let mut permit = admit::key(gw, session, ctx, key, endpoint).await?;
    // Held as long as the body's parsed and translated forms: until the answer, or until a
    // stream has started (see `Plan::forget_request`).
    let mut hold = gw.body_budget.hold();
    let req = decode::decode(gw, session, ctx, key, endpoint, &mut hold).await?;
    let req = guard_input::check(key, req, ctx).await?;
    let estimate = admit::rest(gw, ctx, key, &req, permit.as_mut()).await?;
    let mut lookup = cache::lookup(gw, session, ctx, key, &req).await;
    if let Some(entry) = lookup.hit.take() {
        if cache::serve(session, ctx, &req, entry).await {
            // A hit settles like an answer that cost no provider tokens.
            drop(hold);
            settle::settle(gw, ctx, permit, &Ok(()), estimate).await;
            return Ok(());
        }
    }
    let capture = lookup
        .capture
        .clone()
        .zip(gw.cache.as_ref().map(|c| c.settings().max_entry_bytes));
    // The plan holds the request's forms and their body reservation: both go when a stream
    // has started (no other attempt can follow) or with the plan, before the settlement's
    // round trip.
    let plan = req.into_plan(key, ctx.front, capture, hold);
    let result = dispatch::dispatch(gw, session, ctx, plan).await;
    cache::store(ctx, lookup, &result).await;
    settle::settle(gw, ctx, permit, &result, estimate).await;
    result
}
