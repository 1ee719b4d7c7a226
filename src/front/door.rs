//! The front-door table. Behind every door the request is an OpenAI chat request and the
//! answer an OpenAI chat completion or chunk stream — one pipeline for auth, routing, failover,
//! guardrails, limits, metrics and logs. A door only says which paths are its own, turns its
//! request into the chat form on the way in, and the answer and errors into its own shape on
//! the way out; a provider that speaks the door's API natively gets the client's body as it is.
//!
//! Adding a client API: a module implementing [`FrontDoor`] and one line in the `doors!`
//! table below.

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::core::{ApiError, Chain, StreamTranslator, Usage};
use crate::guardrails::InputApi;
use crate::providers::ProviderKind;

/// Declares [`Front`], the doors' route order ([`DOORS`]) and each API's [`FrontDoor`]: one
/// line per client API.
macro_rules! doors {
    ($($(#[$doc:meta])* $variant:ident => $door:expr;)*) => {
        /// The API a client spoke.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub enum Front {
            $($(#[$doc])* $variant,)*
        }

        /// Every door, in the order their routes are tried.
        pub const DOORS: &[Front] = &[$(Front::$variant,)*];

        impl Front {
            /// The API's door.
            pub fn door(self) -> &'static dyn FrontDoor {
                match self {
                    $(Front::$variant => &$door,)*
                }
            }
        }
    };
}

doors! {
    /// Anthropic Messages (`/v1/messages`).
    Anthropic => super::anthropic::AnthropicDoor;
    /// OpenAI Responses (`/v1/responses`).
    Responses => super::responses::ResponsesDoor;
    /// OpenAI chat completions, embeddings, models; also the door of unknown paths.
    #[default]
    OpenAi => super::openai::OpenAiDoor;
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `POST /v1/messages` (Anthropic Messages).
    Messages,
    /// `POST /v1/messages/count_tokens`: Anthropic deployments only, passed through.
    CountTokens,
    /// `POST /v1/responses` (OpenAI Responses, stateless).
    Responses,
}

impl Endpoint {
    /// Whether the request is only ever passed through to a provider that speaks the client's
    /// API (it has no chat form): no translation, no token charge.
    pub fn passthrough_only(self) -> bool {
        self == Endpoint::CountTokens
    }

    /// Whether the request is a conversation (`messages`, `stream`), as opposed to embeddings.
    pub fn is_chat(self) -> bool {
        self != Endpoint::Embeddings
    }
}

/// Where a request goes once its door is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Sent to a provider.
    Proxy(Endpoint),
    /// `GET /v1/models`.
    ListModels,
    /// `GET /v1/models/{id}`.
    GetModel(String),
}

/// A decoded body: its chat form, and the client's own body when that is not the chat form.
pub type Decoded = (Map<String, Value>, Option<Map<String, Value>>);

/// One client API.
pub trait FrontDoor: Sync {
    /// The route for `method` `path` when the path is this door's: `Err` for a method the
    /// path does not take.
    fn route(&self, method: &str, path: &str) -> Option<Result<Route, ApiError>>;

    /// The chat form of the client's body — what validation, routing, limits and the
    /// provider translators read — and the client's own body when it is not that form.
    /// `native_only`: every deployment will get the client's own body
    /// ([`FrontDoor::native_for`]), so only what routing and limits read is needed.
    fn decode(
        &self,
        endpoint: Endpoint,
        body: Map<String, Value>,
        native_only: bool,
    ) -> Result<Decoded, ApiError>;

    /// Where input guardrails find the text of this door's request.
    fn input_api(&self, endpoint: Endpoint) -> InputApi;

    /// The client's own name for a chat parameter, for error messages.
    fn param_name(&self, chat_param: &'static str) -> &'static str {
        chat_param
    }

    /// Whether a deployment of `kind` speaks this API and gets the client's body as it is.
    /// Output guardrails read OpenAI chunks, so with `output_guardrails` a conversation goes
    /// the translated way.
    fn native_for(
        &self,
        _endpoint: Endpoint,
        _kind: ProviderKind,
        _output_guardrails: bool,
    ) -> bool {
        false
    }

    /// The upstream path (under the API root) of a native request.
    fn native_path(&self, _endpoint: Endpoint) -> &'static str {
        ""
    }

    /// A whole native answer for the client, with the public model name; its usage. `None`
    /// when it must go the translated way instead (a whole answer to a streamed request the
    /// client must still get as a stream).
    fn native_whole(
        &self,
        _endpoint: Endpoint,
        _body: &[u8],
        _public_model: &str,
        _stream: bool,
    ) -> Option<Result<(Bytes, Option<Usage>), ApiError>> {
        None
    }

    /// The relay of a native event stream.
    fn native_stream(&self, public_model: &str) -> Option<Box<dyn StreamTranslator>> {
        let _ = public_model;
        None
    }

    /// A whole native answer, as the client got it, in the chat form the response cache
    /// keeps; `None` when that form cannot give it back (it is then not cached).
    fn native_as_chat(&self, body: &[u8], public_model: &str) -> Option<Bytes> {
        let _ = (body, public_model);
        None
    }

    /// A translator from a native stream, as the client gets it, to OpenAI chunks, for the
    /// response cache; `None` when native streams are not cached.
    fn native_stream_as_chunks(&self, public_model: &str) -> Option<Box<dyn StreamTranslator>> {
        let _ = public_model;
        None
    }

    /// A whole OpenAI chat completion → this API's answer.
    fn encode_whole(&self, completion: Bytes, public_model: &str) -> Result<Bytes, ApiError>;

    /// The encoder from OpenAI chunks to this API's stream; `None` when the chunks are the
    /// answer.
    fn stream_encoder(&self, public_model: &str) -> Option<Box<dyn StreamTranslator>>;

    /// An error body in this API's shape.
    fn error_body(&self, e: &ApiError) -> Bytes {
        e.body()
    }
}

impl Front {
    /// An error body in this API's shape.
    pub fn error_body(self, e: &ApiError) -> Bytes {
        self.door().error_body(e)
    }

    /// A whole OpenAI chat completion → this API's answer.
    pub fn encode_whole(self, completion: Bytes, public_model: &str) -> Result<Bytes, ApiError> {
        self.door().encode_whole(completion, public_model)
    }

    /// Puts this API's stream encoder behind a translator that produces OpenAI chunks.
    pub fn encode_stream(
        self,
        chunks: Box<dyn StreamTranslator>,
        public_model: &str,
    ) -> Box<dyn StreamTranslator> {
        match self.door().stream_encoder(public_model) {
            None => chunks,
            Some(encoder) => Box::new(Chain::new(chunks, encoder)),
        }
    }
}

/// The door and route of `method` `path`. The door is known even when the route is not (an
/// unknown path is the OpenAI door's), so that every error has the client's shape.
pub fn route(method: &str, path: &str) -> (Front, Result<Route, ApiError>) {
    for &front in DOORS {
        if let Some(r) = front.door().route(method, path) {
            return (front, r);
        }
    }
    (Front::OpenAi, Err(ApiError::unknown_route(method, path)))
}

/// `Ok(route)` for `expected` method, else the 405 naming it.
pub(crate) fn only(
    method: &str,
    path: &str,
    expected: &'static str,
    route: Route,
) -> Result<Route, ApiError> {
    if method == expected {
        Ok(route)
    } else {
        Err(ApiError::method_not_allowed(method, path, expected))
    }
}

/// The refusal of a request only a provider speaking the client's API can serve.
pub fn passthrough_refusal() -> ApiError {
    ApiError::invalid_request(
        "Token counting is only available for models served by Anthropic deployments.",
    )
}
