//! Decode: the body read within its bounds, parsed, turned into the chat form by the client's
//! door, validated, and routed to a model the key may use.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::core::members::{self, Raw};
use crate::core::ApiError;
use crate::ctx::Ctx;
use crate::downstream::Session;
use crate::front::{passthrough_refusal, Endpoint, Front, FrontDoor};
use crate::pipeline::body::{self, BodyHold};
use crate::pipeline::gateway::Gateway;
use crate::pipeline::keyring::Key;
use crate::providers::openai::{takes_raw_body, RawBody};
use crate::routing::RouteState;

/// A decoded request, ready for input guardrails and admission.
pub(super) struct Request {
    pub endpoint: Endpoint,
    /// The OpenAI chat (or embeddings) form: what limits and provider translators read.
    /// Empty with `raw`: what sluice reads itself is then in `picked`.
    pub chat: Map<String, Value>,
    /// The client's body as received, when it goes to every deployment without a parse
    /// ([`decode_raw`]).
    pub raw: Option<RawBody>,
    /// With `raw`: the members of the body sluice reads itself (see [`PICKED`]).
    pub picked: Option<Box<Picked>>,
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

/// The top-level members of a request's chat form that sluice reads itself — validation,
/// the token estimate, whether a stream's client asked for usage — by name.
pub(super) trait Members {
    fn member(&self, name: &str) -> Option<&Value>;
}

impl Members for Map<String, Value> {
    fn member(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

/// The members of [`PICKED`] that the raw path parsed, in its order. A handful of values
/// looked up by position: no map, no hashing, no copies of the names.
pub(super) struct Picked([Option<Value>; READ]);

impl Members for Picked {
    fn member(&self, name: &str) -> Option<&Value> {
        self.0.get(place(name)?)?.as_ref()
    }
}

impl Request {
    /// What sluice reads of the request: the picked members on the raw path, else the tree.
    pub fn members(&self) -> &dyn Members {
        match &self.picked {
            Some(p) => &**p,
            None => &self.chat,
        }
    }
}

/// Refuses a compressed body (sluice reads JSON as sent).
pub(super) fn check_encoding(session: &mut Session<'_>) -> Result<(), ApiError> {
    let encoding = session
        .header("content-encoding")
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let Some(enc) = encoding.filter(|e| !e.trim().eq_ignore_ascii_case("identity")) else {
        return Ok(());
    };
    session.close_after();
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
    session: &mut Session<'_>,
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
    if let Some(req) = decode_raw(gw, ctx, key, endpoint, &raw)? {
        return Ok(req);
    }
    let body = parse_object(&raw)?;
    let size = raw.len();
    drop(raw);
    let door = ctx.front.door();
    let native_only = natively_served(gw, key, door, endpoint, &body);
    let (chat, client) = door.decode(endpoint, body, native_only)?;
    let payload = Shape::of(chat.get(payload_name(endpoint)));
    let (model, stream) = validate(endpoint, &chat, payload)?;
    ctx.stream = stream;
    let route = route(gw, key, &model)?;
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
        raw: None,
        picked: None,
        client,
        native_only,
        stream,
        route,
        size,
    })
}

/// The members of an OpenAI body that the raw path looks at: the first [`READ`] are parsed
/// (validation, the token estimate, whether a stream's client asked for usage), the content
/// — `messages` of a chat, `input` of embeddings — is only typed.
const PICKED: [&str; 8] = [
    "model",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "messages",
    "input",
];
/// How many of [`PICKED`] are parsed.
const READ: usize = 6;

/// The place of the member `name` in [`PICKED`].
fn place(name: &str) -> Option<usize> {
    PICKED.iter().position(|n| *n == name)
}

/// What [`members::pick`] found of the member `name` of [`PICKED`].
fn picked<'a>(picked: &[Option<Raw<'a>>], name: &str) -> Option<Raw<'a>> {
    picked[place(name).expect("a member of PICKED")]
}

/// An OpenAI chat or embeddings request that nothing in sluice needs to read in full — no
/// input guardrails, no response cache for it, every deployment takes the body as it is but
/// for `model` and `stream_options` — is validated in full without building a tree: the
/// members sluice reads are parsed, `messages` / `input` only looked at, and the body goes
/// upstream as it came (see [`RawBody`]). A large prompt is then copied once, not parsed
/// into thousands of nodes and written out again. `None`: the request takes the tree path
/// (also to word the error of a body that is not valid JSON).
fn decode_raw(
    gw: &Gateway,
    ctx: &mut Ctx,
    key: &Key,
    endpoint: Endpoint,
    raw: &Bytes,
) -> Result<Option<Request>, ApiError> {
    if ctx.front != Front::OpenAi
        || !matches!(endpoint, Endpoint::Chat | Endpoint::Embeddings)
        || key.guardrails.has_input()
    {
        return Ok(None);
    }
    // A tree parse decodes escapes and refuses a lone surrogate: such bodies go that way, so
    // that both paths accept and send the same.
    let Ok(Some(picked)) = members::pick_unescaped(raw, PICKED) else {
        return Ok(None);
    };
    let mut read = Picked(Default::default());
    for (slot, value) in read.0.iter_mut().zip(&picked) {
        if let Some(v) = value {
            let Ok(v) = serde_json::from_str::<Value>(v.get()) else {
                return Ok(None);
            };
            *slot = Some(v);
        }
    }
    let content = self::picked(&picked, payload_name(endpoint));
    let (model, stream) = validate(endpoint, &read, Shape::of_raw(content))?;
    ctx.stream = stream;
    let route = route(gw, key, &model)?;
    let public = route.route.name.as_str();
    let cached = gw.cache.as_ref().is_some_and(|c| c.covers(public)) && key.cache_scope.is_some();
    let every_deployment = route
        .route
        .deployments
        .iter()
        .all(|d| takes_raw_body(d.provider.kind));
    if cached || !every_deployment {
        return Ok(None);
    }
    ctx.model = Some(model);
    let model = self::picked(&picked, "model")
        .map(|v| members::span(raw, v))
        .expect("validated: present");
    let stream_options = self::picked(&picked, "stream_options")
        .map(|v| members::span(raw, v))
        .zip(read.member("stream_options").cloned());
    Ok(Some(Request {
        endpoint,
        raw: Some(RawBody {
            text: raw.clone(),
            model,
            stream_options,
        }),
        chat: Map::new(),
        picked: Some(Box::new(read)),
        client: None,
        native_only: false,
        stream,
        route,
        size: raw.len(),
    }))
}

/// The deployments of `model`, if the key may use it.
fn route(gw: &Gateway, key: &Key, model: &str) -> Result<Arc<RouteState>, ApiError> {
    gw.router
        .route(model)
        .filter(|_| key.allows(model))
        .ok_or_else(|| ApiError::model_not_found(model))
        .cloned()
}

/// The member that carries a request's content.
fn payload_name(endpoint: Endpoint) -> &'static str {
    if endpoint.is_chat() {
        "messages"
    } else {
        "input"
    }
}

/// What validation needs to know of `messages` / `input`: its JSON type.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Absent,
    Null,
    String,
    EmptyArray,
    Array,
    Other,
}

impl Shape {
    fn of(v: Option<&Value>) -> Shape {
        match v {
            None => Shape::Absent,
            Some(Value::Null) => Shape::Null,
            Some(Value::String(_)) => Shape::String,
            Some(Value::Array(a)) if a.is_empty() => Shape::EmptyArray,
            Some(Value::Array(_)) => Shape::Array,
            Some(_) => Shape::Other,
        }
    }

    fn of_raw(v: Option<Raw<'_>>) -> Shape {
        let Some(v) = v else {
            return Shape::Absent;
        };
        match v.get().as_bytes().first() {
            _ if members::is_null(v) => Shape::Null,
            Some(b'"') => Shape::String,
            Some(b'[') if members::is_empty_array(v) => Shape::EmptyArray,
            Some(b'[') => Shape::Array,
            _ => Shape::Other,
        }
    }
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

/// Checks the parameters sluice relies on (of the chat form of the request, with the shape of
/// its `messages` / `input`); the rest is the provider's business. The model and whether the
/// answer is streamed.
fn validate(
    endpoint: Endpoint,
    body: &dyn Members,
    payload: Shape,
) -> Result<(String, bool), ApiError> {
    let model = match body.member("model") {
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
        return match payload {
            Shape::Absent | Shape::Null => Err(ApiError::missing_param("input")),
            Shape::String | Shape::EmptyArray | Shape::Array => Ok((model, false)),
            Shape::Other => Err(ApiError::invalid_param(
                "input",
                "'input' must be a string or an array.",
            )),
        };
    }
    match payload {
        Shape::Absent | Shape::Null => return Err(ApiError::missing_param("messages")),
        Shape::EmptyArray => {
            return Err(ApiError::invalid_param(
                "messages",
                "'messages' must contain at least one message.",
            ))
        }
        Shape::Array => {}
        Shape::String | Shape::Other => {
            return Err(ApiError::invalid_param(
                "messages",
                "'messages' must be an array of message objects.",
            ))
        }
    }
    let stream = match body.member("stream") {
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
