//! Input guardrails: the key's rules over the request as the client wrote it. The request
//! comes back with redactions applied (its chat form re-decoded when the client's own body
//! changed), or is refused.

use serde_json::{Map, Value};

use super::decode::Request;
use crate::core::ApiError;
use crate::ctx::Ctx;
use crate::guardrails::{InputApi, Meta, Policy};
use crate::pipeline::keyring::Key;

/// Request bodies larger than this are checked on the blocking pool.
const INLINE_CHECK_BYTES: usize = 256 << 10;

pub(super) async fn check(key: &Key, mut req: Request, ctx: &mut Ctx) -> Result<Request, ApiError> {
    if !key.guardrails.has_input() {
        return Ok(req);
    }
    let door = ctx.front.door();
    let api = door.input_api(req.endpoint);
    match req.client.take() {
        None => {
            let chat = std::mem::take(&mut req.chat);
            req.chat = scan(key, api, chat, req.size, ctx).await?.0;
        }
        Some(client) => {
            let (client, changed) = scan(key, api, client, req.size, ctx).await?;
            if changed {
                let (chat, client) = door.decode(req.endpoint, client, req.native_only)?;
                req.chat = chat;
                req.client = client;
            } else {
                req.client = Some(client);
            }
        }
    }
    Ok(req)
}

/// Runs the rules over one body: the body (redacted when `true`), or the refusal.
async fn scan(
    key: &Key,
    api: InputApi,
    body: Map<String, Value>,
    size: usize,
    ctx: &mut Ctx,
) -> Result<(Map<String, Value>, bool), ApiError> {
    let policy = key.guardrails.clone();
    let sync_policy = policy.clone();
    let check = move || {
        let mut v = Value::Object(body);
        let verdict = sync_policy.check_input(&mut v, api);
        (v, verdict)
    };
    // Scanning is linear but not free: a large body is checked off the async workers, so
    // that other connections are not kept waiting.
    let (v, verdict) = if size > INLINE_CHECK_BYTES {
        tokio::task::spawn_blocking(check)
            .await
            .map_err(|_| ApiError::internal("The request could not be checked."))?
    } else {
        check()
    };
    let blocked = verdict
        .blocked()
        .map(|(g, k)| (g.to_string(), k.to_string()));
    let mut changed = verdict.changed();
    ctx.guardrails
        .extend(verdict.findings.into_iter().map(|f| ("input", f)));
    if let Some((guardrail, kind)) = blocked {
        return Err(ApiError::content_filter(&guardrail, &kind));
    }
    let mut v = v;
    if policy.has_input_webhooks() {
        changed |= webhooks(&policy, api, &mut v, ctx).await?;
    }
    match v {
        Value::Object(m) => Ok((m, changed)),
        _ => Err(ApiError::internal(
            "The request body changed shape in the guardrails.",
        )),
    }
}

/// The input webhook guardrails over the checked body: whether they redacted it, or the
/// refusal (400 `content_filter` on a block; 503 `guardrail_unavailable` when a
/// `fail_closed` webhook gave no verdict).
async fn webhooks(
    policy: &Policy,
    api: InputApi,
    body: &mut Value,
    ctx: &mut Ctx,
) -> Result<bool, ApiError> {
    let meta = Meta {
        model: ctx.model.as_deref().unwrap_or(""),
        key: ctx.key_name.as_deref().unwrap_or(""),
        request_id: &ctx.request_id,
    };
    // Boxed: the webhook client's state would otherwise be reserved in every request's
    // future.
    let verdict = Box::pin(policy.check_input_webhooks(body, api, meta)).await;
    ctx.guardrails
        .extend(verdict.findings.into_iter().map(|f| ("input", f)));
    if let Some((guardrail, kind)) = verdict.blocked {
        return Err(ApiError::content_filter(&guardrail, &kind));
    }
    if let Some(guardrail) = verdict.unavailable {
        return Err(ApiError::guardrail_unavailable(&guardrail));
    }
    Ok(verdict.changed)
}
