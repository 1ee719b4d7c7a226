//! Decode: the body read within its bounds, parsed, turned into the chat form by the client's
//! door, validated, and routed to a model the key may use.

use std::sync::Arc;

use pingora::proxy::Session;
use serde_json::{Map, Value};

use crate::core::ApiError;
use crate::ctx::Ctx;
use crate::front::{passthrough_refusal, Endpoint, FrontDoor};
use crate::pipeline::body::{self, BodyHold};
use crate::pipeline::gateway::Gateway;
use crate::pipeline::keyring::Key;
use crate::routing::RouteState;

/// A decoded request, ready for input guardrails and admission.
pub(super) struct Request {
    pub endpoint: Endpoint,
    /// The OpenAI chat (or embeddings) form: what limits and provider translators read.
    pub chat: Map<String, Value>,
    /// The body as the client sent it, for the other doors: native deployments get it, and
    /// input guardrails read it.
    pub client: Option<Map<String, Value>>,
    /// Every deployment gets the client's own body; `chat` is only a stand-in.
    pub native_only: bool,
    pub stream: bool,
    pub route: Arc<RouteState>,
    /// Size of the body as received.
    pub size: usize,
}

/// Refuses a compressed body (sluice reads JSON as sent).
pub(super) fn check_encoding(session: &mut Session) -> Result<(), ApiError> {
    let encoding = session
        .req_header()
        .headers
        .get("content-encoding")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let Some(enc) = encoding.filter(|e| !e.trim().eq_ignore_ascii_case("identity")) else {
        return Ok(());
    };
    session.set_keepalive(None);
    let mut e = ApiError::invalid_request(format!(
        "Content-Encoding '{}' is not supported; send the JSON body uncompressed.",
        crate::core::error::echo(&enc)
    ))
    .with_code("unsupported_content_encoding");
    e.status = 415;
    Err(e)
}

pub(super) async fn decode(
    gw: &Gateway,
    session: &mut Session,
    ctx: &mut Ctx,
    key: &Key,
    endpoint: Endpoint,
    hold: &mut BodyHold,
) -> Result<Request, ApiError> {
    let limits = &gw.cfg.limits;
    let raw = body::read(
        session,
        limits.max_body_bytes,
        gw.cfg.timeouts.request_body,
        hold,
    )
    .await?;
    let body = parse_object(&raw)?;
    let size = raw.len();
    drop(raw);
    let door = ctx.front.door();
    let native_only = natively_served(gw, key, door, endpoint, &body);
    let (chat, client) = door.decode(endpoint, body, native_only)?;
    let (model, stream) = validate(endpoint, &chat)?;
    ctx.stream = stream;
    let route = gw
        .router
        .route(&model)
        .filter(|_| key.allows(&model))
        .ok_or_else(|| ApiError::model_not_found(&model))?
        .clone();
    ctx.model = Some(model);
    let has_output = key.guardrails.has_output();
    if endpoint.passthrough_only()
        && !route
            .route
            .deployments
            .iter()
            .all(|d| door.native_for(endpoint, d.provider.kind, has_output))
    {
        return Err(passthrough_refusal().with_param("model"));
    }
    Ok(Request {
        endpoint,
        chat,
        client,
        native_only,
        stream,
        route,
        size,
    })
}

fn parse_object(raw: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(raw) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(
            ApiError::invalid_request("The request body must be a JSON object.")
                .with_code("invalid_json"),
        ),
        Err(e) => Err(ApiError::invalid_json(&e)),
    }
}

/// Whether every deployment of the requested model speaks the client's API and will get its
/// body as it is (then the door need not translate it).
fn natively_served(
    gw: &Gateway,
    key: &Key,
    door: &dyn FrontDoor,
    endpoint: Endpoint,
    body: &Map<String, Value>,
) -> bool {
    let Some(model) = body.get("model").and_then(Value::as_str) else {
        return false;
    };
    let has_output = key.guardrails.has_output();
    gw.router.route(model).is_some_and(|r| {
        r.deployments
            .iter()
            .all(|d| door.native_for(endpoint, d.deployment.provider.kind, has_output))
    })
}

/// Checks the parameters sluice relies on (of the chat form of the request); the rest is the
/// provider's business. The model and whether the answer is streamed.
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
    if !endpoint.is_chat() {
        return match body.get("input") {
            None | Some(Value::Null) => Err(ApiError::missing_param("input")),
            Some(Value::String(_)) | Some(Value::Array(_)) => Ok((model, false)),
            Some(_) => Err(ApiError::invalid_param(
                "input",
                "'input' must be a string or an array.",
            )),
        };
    }
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
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::invalid_param(
                "stream",
                "'stream' must be a boolean.",
            ))
        }
    };
    Ok((model, stream))
}
