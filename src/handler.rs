//! The request path, from an authenticated request to a forwarded one: endpoint dispatch,
//! bounded body read, JSON validation, model routing and the answers sluice gives locally.
//!
//! [`handle`] returns `Err` only while nothing has been sent to the client; the caller then
//! renders the error. Once a response has started, failures are reported in-band.

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::config::{find_key, GatewayKey, ProviderKind};
use crate::core::ApiError;
use crate::ctx::Ctx;
use crate::forward::{self, Endpoint, Plan};
use crate::front::Front;
use crate::gateway::Gateway;
use crate::guardrails::InputApi;
use crate::limits::{Admission, Rejection, Usage as LimitUsage};
use crate::{body, respond};
use pingora::proxy::Session;

/// Sets the request id: the client's `x-request-id` when it is sane, otherwise a new one.
pub fn request_id(session: &Session) -> String {
    let given = session
        .req_header()
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        });
    match given {
        Some(s) => s.to_string(),
        None => {
            let n: u128 = rand::random();
            format!("{n:032x}")
        }
    }
}

/// Serves one request.
pub async fn handle(gw: &Gateway, session: &mut Session, ctx: &mut Ctx) -> Result<(), ApiError> {
    let method = session.req_header().method.as_str().to_string();
    let path = session.req_header().uri.path().to_string();
    ctx.front = match path.as_str() {
        "/v1/messages" | "/v1/messages/count_tokens" => Front::Anthropic,
        "/v1/responses" => Front::Responses,
        _ => Front::OpenAi,
    };
    let key = authenticate(gw, session)?;
    ctx.key_name = Some(key.name.clone());

    match (method.as_str(), path.as_str()) {
        ("POST", "/v1/chat/completions") => proxy(gw, session, ctx, key, Endpoint::Chat).await,
        ("POST", "/v1/embeddings") => proxy(gw, session, ctx, key, Endpoint::Embeddings).await,
        ("POST", "/v1/messages") => proxy(gw, session, ctx, key, Endpoint::Messages).await,
        ("POST", "/v1/messages/count_tokens") => {
            proxy(gw, session, ctx, key, Endpoint::CountTokens).await
        }
        ("POST", "/v1/responses") => proxy(gw, session, ctx, key, Endpoint::Responses).await,
        ("GET", "/v1/models") => {
            list_models(gw, session, ctx, key).await;
            Ok(())
        }
        ("GET", p) if p.starts_with("/v1/models/") => {
            retrieve_model(gw, session, ctx, key, &p["/v1/models/".len()..]).await
        }
        (
            _,
            "/v1/chat/completions"
            | "/v1/embeddings"
            | "/v1/messages"
            | "/v1/messages/count_tokens"
            | "/v1/responses",
        ) => Err(ApiError::method_not_allowed(&method, &path, "POST")),
        (_, "/v1/models") => Err(ApiError::method_not_allowed(&method, &path, "GET")),
        _ => Err(ApiError::unknown_route(&method, &path)),
    }
}

/// `Authorization: Bearer <key>` or `x-api-key: <key>`.
fn authenticate<'a>(gw: &'a Gateway, session: &Session) -> Result<&'a GatewayKey, ApiError> {
    let headers = &session.req_header().headers;
    let presented = match headers.get("authorization") {
        Some(v) => {
            let v = v.to_str().map_err(|_| {
                ApiError::unauthorized("The Authorization header is not valid text.")
            })?;
            let (scheme, token) = v.split_once(' ').unwrap_or((v, ""));
            if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
                return Err(ApiError::unauthorized(
                    "The Authorization header must be 'Bearer <key>'.",
                ));
            }
            token.trim()
        }
        None => match headers.get("x-api-key") {
            Some(v) => v
                .to_str()
                .map_err(|_| ApiError::unauthorized("The x-api-key header is not valid text."))?
                .trim(),
            None => {
                return Err(ApiError::unauthorized(
                    "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' \
                     (or in the x-api-key header).",
                ))
            }
        },
    };
    find_key(&gw.cfg.keys, presented)
        .ok_or_else(|| ApiError::unauthorized("Incorrect API key provided."))
}

async fn list_models(gw: &Gateway, session: &mut Session, ctx: &mut Ctx, key: &GatewayKey) {
    let data: Vec<Value> = gw
        .cfg
        .models
        .keys()
        .filter(|m| key.allows(m))
        .map(|m| model_object(gw, m))
        .collect();
    let body = json!({"object": "list", "data": data});
    send_json(session, ctx, &body).await;
}

async fn retrieve_model(
    gw: &Gateway,
    session: &mut Session,
    ctx: &mut Ctx,
    key: &GatewayKey,
    model: &str,
) -> Result<(), ApiError> {
    if !gw.cfg.models.contains_key(model) || !key.allows(model) {
        return Err(ApiError::model_not_found(model));
    }
    send_json(session, ctx, &model_object(gw, model)).await;
    Ok(())
}

fn model_object(gw: &Gateway, name: &str) -> Value {
    json!({"id": name, "object": "model", "created": gw.started_unix, "owned_by": "sluice"})
}

async fn send_json(session: &mut Session, ctx: &mut Ctx, body: &Value) {
    let bytes = Bytes::from(serde_json::to_vec(body).expect("JSON values serialise"));
    let h = respond::header(200, "application/json", ctx);
    respond::json(session, ctx, 200, bytes, h).await;
}

/// Checks the parameters sluice relies on (of the OpenAI form of the request); the rest is the
/// provider's business.
fn validate(endpoint: Endpoint, body: &Map<String, Value>) -> Result<(String, bool), ApiError> {
    let model = match body.get("model") {
        None | Some(Value::Null) => return Err(ApiError::missing_param("model")),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) => {
            return Err(ApiError::invalid_param(
                "model",
                "'model' must not be empty.",
            ))
        }
        Some(_) => {
            return Err(ApiError::invalid_param(
                "model",
                "'model' must be a string.",
            ))
        }
    };
    let stream = match endpoint {
        Endpoint::Chat | Endpoint::Messages | Endpoint::Responses | Endpoint::CountTokens => {
            match body.get("messages") {
                None | Some(Value::Null) => return Err(ApiError::missing_param("messages")),
                Some(Value::Array(a)) if a.is_empty() => {
                    return Err(ApiError::invalid_param(
                        "messages",
                        "'messages' must contain at least one message.",
                    ))
                }
                Some(Value::Array(_)) => {}
                Some(_) => {
                    return Err(ApiError::invalid_param(
                        "messages",
                        "'messages' must be an array of message objects.",
                    ))
                }
            }
            match body.get("stream") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(ApiError::invalid_param(
                        "stream",
                        "'stream' must be a boolean.",
                    ))
                }
            }
        }
        Endpoint::Embeddings => {
            match body.get("input") {
                None | Some(Value::Null) => return Err(ApiError::missing_param("input")),
                Some(Value::String(_)) | Some(Value::Array(_)) => {}
                Some(_) => {
                    return Err(ApiError::invalid_param(
                        "input",
                        "'input' must be a string or an array.",
                    ))
                }
            }
            false
        }
    };
    Ok((model, stream))
}

/// Runs the key's input guardrails over the request as the client wrote it: the body comes
/// back with redactions applied, or the request is refused.
async fn check_input(
    key: &GatewayKey,
    endpoint: Endpoint,
    body: Map<String, Value>,
    size: usize,
    ctx: &mut Ctx,
) -> Result<(Map<String, Value>, bool), ApiError> {
    let api = match endpoint {
        Endpoint::Chat => InputApi::ChatCompletions,
        Endpoint::Embeddings => InputApi::Embeddings,
        Endpoint::Messages | Endpoint::CountTokens => InputApi::AnthropicMessages,
        Endpoint::Responses => InputApi::Responses,
    };
    let policy = key.guardrails.clone();
    let check = move || {
        let mut v = Value::Object(body);
        let verdict = policy.check_input(&mut v, api);
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
    let changed = verdict.redacted();
    ctx.guardrails
        .extend(verdict.findings.into_iter().map(|f| ("input", f)));
    if let Some((guardrail, kind)) = blocked {
        return Err(ApiError::content_filter(&guardrail, &kind));
    }
    match v {
        Value::Object(m) => Ok((m, changed)),
        _ => Err(ApiError::internal(
            "The request body changed shape in the guardrails.",
        )),
    }
}

/// Whether every deployment of a Responses request speaks the Responses API itself (OpenAI),
/// with nothing to inspect in the answer: the request then goes upstream as it is, and what
/// only OpenAI can do (`store`, `previous_response_id`, built-in tools) is its business.
fn native_only(
    gw: &Gateway,
    key: &GatewayKey,
    endpoint: Endpoint,
    body: &Map<String, Value>,
) -> bool {
    if endpoint != Endpoint::Responses || key.guardrails.has_output() {
        return false;
    }
    let Some(model) = body.get("model").and_then(Value::as_str) else {
        return false;
    };
    gw.router.route(model).is_some_and(|r| {
        r.deployments
            .iter()
            .all(|d| d.deployment.provider.kind == ProviderKind::OpenAi)
    })
}

/// The chat form of a request to another front door; for a Responses request served only
/// natively, a stand-in carrying what routing, validation and limits read.
fn chat_form(
    endpoint: Endpoint,
    body: &Map<String, Value>,
    native_only: bool,
) -> Result<Map<String, Value>, ApiError> {
    if !native_only {
        return to_chat(endpoint, body);
    }
    let mut m = Map::new();
    for (from, to) in [
        ("model", "model"),
        ("stream", "stream"),
        ("max_output_tokens", "max_completion_tokens"),
    ] {
        if let Some(v) = body.get(from) {
            m.insert(to.into(), v.clone());
        }
    }
    m.insert(
        "messages".into(),
        serde_json::json!([{"role": "user", "content": ""}]),
    );
    Ok(m)
}

/// The OpenAI chat form of a request to one of the other front doors.
fn to_chat(endpoint: Endpoint, body: &Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    match endpoint {
        Endpoint::Messages => crate::inbound::anthropic::to_chat(body),
        Endpoint::Responses => crate::inbound::responses::to_chat(body),
        // Only what routing and validation look at; the body itself goes upstream as it is.
        Endpoint::CountTokens => {
            let mut m = Map::new();
            for k in ["model", "messages"] {
                if let Some(v) = body.get(k) {
                    m.insert(k.into(), v.clone());
                }
            }
            Ok(m)
        }
        Endpoint::Chat | Endpoint::Embeddings => Ok(body.clone()),
    }
}

async fn proxy(
    gw: &Gateway,
    session: &mut Session,
    ctx: &mut Ctx,
    key: &GatewayKey,
    endpoint: Endpoint,
) -> Result<(), ApiError> {
    let encoding = session
        .req_header()
        .headers
        .get("content-encoding")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if let Some(enc) = encoding.filter(|e| !e.trim().eq_ignore_ascii_case("identity")) {
        session.set_keepalive(None);
        let mut e = ApiError::invalid_request(format!(
            "Content-Encoding '{}' is not supported; send the JSON body uncompressed.",
            crate::core::error::echo(&enc)
        ))
        .with_code("unsupported_content_encoding");
        e.status = 415;
        return Err(e);
    }
    // The key's request rate and concurrency are admitted before anything of the body is
    // read: a client over them costs no body read, parse or scan.
    let mut permit = if gw.limiter.is_active() && endpoint != Endpoint::CountTokens {
        match gw.limiter.admit_key(&key.name).await {
            Ok(p) => Some(p),
            Err(r) => {
                session.set_keepalive(None);
                return Err(rejected(&r, ctx));
            }
        }
    } else {
        None
    };
    // Held until the request is answered: the body's parsed and translated forms live as long.
    let mut hold = gw.body_budget.hold();
    let raw = body::read(
        session,
        gw.cfg.limits.max_body_bytes,
        gw.cfg.timeouts.request_body,
        &mut hold,
    )
    .await?;
    let body = match serde_json::from_slice::<Value>(&raw) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            return Err(
                ApiError::invalid_request("The request body must be a JSON object.")
                    .with_code("invalid_json"),
            )
        }
        Err(e) => return Err(ApiError::invalid_json(&e)),
    };
    let body_len = raw.len();
    drop(raw);
    // The other front doors are served as OpenAI chat requests; `client` keeps their own form.
    let native_only = native_only(gw, key, endpoint, &body);
    let (mut body, mut client) = match endpoint {
        Endpoint::Chat | Endpoint::Embeddings => (body, None),
        _ => (chat_form(endpoint, &body, native_only)?, Some(body)),
    };
    let (model, stream) = validate(endpoint, &body)?;
    ctx.stream = stream;
    let route = gw
        .router
        .route(&model)
        .filter(|_| key.allows(&model))
        .ok_or_else(|| ApiError::model_not_found(&model))?
        .clone();
    ctx.model = Some(model);
    if endpoint == Endpoint::CountTokens
        && route
            .route
            .deployments
            .iter()
            .any(|d| d.provider.kind != ProviderKind::Anthropic)
    {
        return Err(ApiError::invalid_request(
            "Token counting is only available for models served by Anthropic deployments.",
        )
        .with_param("model"));
    }
    if key.guardrails.has_input() {
        match client.take() {
            None => body = check_input(key, endpoint, body, body_len, ctx).await?.0,
            Some(c) => {
                let (c, changed) = check_input(key, endpoint, c, body_len, ctx).await?;
                if changed {
                    body = chat_form(endpoint, &c, native_only)?;
                }
                client = Some(c);
            }
        }
    }
    let client_wants_usage = stream
        && body
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
    let estimate = estimate_tokens(
        endpoint,
        &body,
        body_len,
        gw.cfg.limits.max_completion_tokens,
    )?;
    if let Some(p) = permit.as_mut() {
        let admission = Admission {
            key: &key.name,
            model: &route.route.name,
            estimated_tokens: estimate,
        };
        if let Err(r) = gw.limiter.admit_rest(&admission, p).await {
            return Err(rejected(&r, ctx));
        }
        ctx.extra_headers.extend(p.headers());
    }
    let plan = Plan {
        endpoint,
        route,
        body,
        stream,
        client_wants_usage,
        guardrails: key.guardrails.clone(),
        native: client,
    };
    let result = forward::forward(gw, session, ctx, plan).await;
    if let Some(p) = permit {
        // The provider's final report when there is one. A request that failed before any
        // answer costs nothing — unless the client left while a provider was working on it:
        // the provider may have generated the answer all the same, so the estimate stays
        // charged. An answer cut short (the client left, the stream broke) has only a partial
        // report — the provider may have generated more — so it keeps the estimate charged,
        // or what was reported if that is more.
        let usage = match (&result, ctx.usage) {
            (_, Some(u)) if ctx.usage_final || u.total_tokens > estimate => Some(LimitUsage {
                prompt: u.prompt_tokens,
                completion: u.completion_tokens,
            }),
            (Err(_), None) if !(ctx.client_gone && ctx.attempts > 0) => Some(LimitUsage::default()),
            _ => None,
        };
        p.settle(usage).await;
    }
    result
}

/// Tokens charged at admission: the request's size in bytes / 4 (a rough tokens-per-byte
/// ratio for prompts) plus the completion it may produce (`max_completion_tokens` /
/// `max_tokens`, else [`DEFAULT_COMPLETION_ESTIMATE`], times `n`). Settlement corrects the
/// charge. A maximum that is not a whole number from 0 to `ceiling`
/// (`limits.max_completion_tokens`) is refused: no request can name a cost that would
/// exhaust a budget or a token bucket by itself.
fn estimate_tokens(
    endpoint: Endpoint,
    body: &Map<String, Value>,
    body_len: usize,
    ceiling: u64,
) -> Result<u64, ApiError> {
    // The parameter as the client named it, for the error.
    let client_param = |chat: &'static str| match endpoint {
        Endpoint::Responses => "max_output_tokens",
        Endpoint::Messages | Endpoint::CountTokens => "max_tokens",
        _ => chat,
    };
    let mut completion = None;
    for name in ["max_completion_tokens", "max_tokens"] {
        let v = match body.get(name) {
            None | Some(Value::Null) => continue,
            Some(v) => v,
        };
        let param = client_param(name);
        let n = v
            .as_u64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64) // saturating
            })
            .ok_or_else(|| {
                ApiError::invalid_param(param, format!("'{param}' must be a non-negative integer."))
            })?;
        if n > ceiling {
            return Err(ApiError::invalid_param(
                param,
                format!("'{param}' is {n}, above this gateway's maximum of {ceiling} tokens per request."),
            ));
        }
        completion = Some(completion.map_or(n, |c: u64| c.max(n)));
    }
    let choices = body
        .get("n")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .clamp(1, MAX_CHOICES);
    let completion = completion
        .unwrap_or(DEFAULT_COMPLETION_ESTIMATE)
        .saturating_mul(choices);
    Ok((body_len as u64 / 4).saturating_add(completion))
}

/// The largest `n` that counts in an estimate (OpenAI's own maximum).
const MAX_CHOICES: u64 = 128;

/// Request bodies larger than this are checked by input guardrails on the blocking pool.
const INLINE_CHECK_BYTES: usize = 256 << 10;

/// The completion tokens assumed at admission when a request sets no maximum.
const DEFAULT_COMPLETION_ESTIMATE: u64 = 256;

/// A refused admission as the client's error, with `Retry-After` and the rate-limit headers.
fn rejected(r: &Rejection, ctx: &mut Ctx) -> ApiError {
    let mut retry_after = None;
    for (name, value) in r.headers() {
        if name == "retry-after" {
            retry_after = Some(value);
        } else {
            ctx.extra_headers.push((name, value));
        }
    }
    ApiError::limited(r.status(), r.code(), r.message()).with_retry_after(retry_after)
}
