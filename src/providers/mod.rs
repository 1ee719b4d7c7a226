//! Providers: everything sluice knows about each provider's wire, one folder per provider.
//!
//! A provider module owns its [`Descriptor`] (default base URL, how the key is sent, extra
//! headers, stream framing, health-check path) and implements [`ProviderWire`]: the path per
//! endpoint, request rendering, answer and stream parsing, error mapping. Translation is pure:
//! no sockets here, so it is unit-tested and fuzzed directly. The registry in `kind.rs` is
//! the only place that maps a provider kind to its wire; the exchange code asks the wire,
//! never a name.
//!
//! Adding a provider: a folder `providers/<name>/` with its descriptor and `ProviderWire`
//! impl, and one line in the `providers!` table of `kind.rs`.

pub mod anthropic;
mod common;
pub mod gemini;
mod kind;
pub mod ollama;
pub mod openai;

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::core::{ApiError, StreamTranslator, Usage};
pub(crate) use common::*;
pub use kind::ProviderKind;

/// What sluice needs to know about a provider besides translation.
#[derive(Debug)]
pub struct Descriptor {
    /// Where its API lives when the config sets no `base_url` (`None`: it must be set).
    pub default_base_url: Option<&'static str>,
    /// Whether a provider of this kind needs an `api_key`.
    pub requires_api_key: bool,
    /// How the key is sent.
    pub credential: Credential,
    /// Headers every request to it carries.
    pub headers: &'static [(&'static str, &'static str)],
    /// The content type of a streamed answer; also the `Accept` of a streamed request.
    pub stream_content_type: &'static str,
    /// The default active health-check path under the API root.
    pub health_path: &'static str,
    /// The versioned API root under a `base_url` that names the server root (`/v1`), added
    /// unless the base URL already ends with it; empty when base URLs include it.
    pub api_version: &'static str,
}

/// How a provider expects its API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// The key alone in this header.
    Header(&'static str),
}

impl Credential {
    /// The header that carries the key, and what its value has before the key.
    pub fn header(self) -> (&'static str, &'static str) {
        match self {
            Credential::Bearer => ("authorization", "Bearer "),
            Credential::Header(name) => (name, ""),
        }
    }
}

/// One provider's wire format: the requests sluice sends it and how its answers read.
pub trait ProviderWire: Sync {
    fn descriptor(&self) -> &Descriptor;

    /// The path of a chat (or embeddings) request under the provider's API root.
    fn path(&self, embeddings: bool, model: &str, stream: bool) -> String;

    /// The upstream body for a chat request (`embeddings` false) or an embeddings request.
    fn render(
        &self,
        body: &mut Map<String, Value>,
        model: &str,
        stream: bool,
        embeddings: bool,
    ) -> Result<Bytes, ApiError>;

    /// A whole successful answer → the OpenAI response.
    fn response(
        &self,
        body: &[u8],
        public_model: &str,
        embeddings: bool,
    ) -> Result<(Bytes, Option<Usage>), ApiError>;

    /// An error answer → the OpenAI error shape; `provider` is the config name.
    fn error(
        &self,
        status: u16,
        body: &[u8],
        provider: &str,
        retry_after: Option<String>,
    ) -> ApiError;

    /// The translator for a streamed answer.
    fn stream(&self, public_model: &str, client_wants_usage: bool) -> Box<dyn StreamTranslator>;

    /// Refuses a `base_url` path this provider cannot be served under (the config error).
    fn check_base_path(&self, _path: &str) -> Result<(), &'static str> {
        Ok(())
    }
}

/// A provider kind's wire: its descriptor and translations.
#[derive(Clone, Copy)]
pub struct Wire {
    pub kind: ProviderKind,
    format: &'static dyn ProviderWire,
}

impl PartialEq for Wire {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
    }
}

impl Eq for Wire {}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Wire({})", self.kind.as_str())
    }
}

impl Wire {
    /// A provider kind's wire (see the registry in `kind.rs`).
    pub fn of(kind: ProviderKind) -> Wire {
        Wire {
            kind,
            format: kind.format(),
        }
    }

    pub fn descriptor(self) -> &'static Descriptor {
        self.format.descriptor()
    }

    /// See [`ProviderWire::path`].
    pub fn path(self, embeddings: bool, model: &str, stream: bool) -> String {
        self.format.path(embeddings, model, stream)
    }

    /// See [`ProviderWire::render`].
    pub fn render(
        self,
        body: &mut Map<String, Value>,
        model: &str,
        stream: bool,
        embeddings: bool,
    ) -> Result<Bytes, ApiError> {
        self.format.render(body, model, stream, embeddings)
    }

    /// See [`ProviderWire::response`].
    pub fn response(
        self,
        body: &[u8],
        public_model: &str,
        embeddings: bool,
    ) -> Result<(Bytes, Option<Usage>), ApiError> {
        self.format.response(body, public_model, embeddings)
    }

    /// See [`ProviderWire::error`].
    pub fn error(
        self,
        status: u16,
        body: &[u8],
        provider: &str,
        retry_after: Option<String>,
    ) -> ApiError {
        self.format.error(status, body, provider, retry_after)
    }

    /// See [`ProviderWire::stream`].
    pub fn stream(self, public_model: &str, client_wants_usage: bool) -> Box<dyn StreamTranslator> {
        self.format.stream(public_model, client_wants_usage)
    }

    /// Whether an answer with this `content-type` is a stream in this wire format.
    pub fn is_stream(self, content_type: &str) -> bool {
        content_type.starts_with(self.descriptor().stream_content_type)
    }

    /// See [`ProviderWire::check_base_path`].
    pub fn check_base_path(self, path: &str) -> Result<(), &'static str> {
        self.format.check_base_path(path)
    }

    /// The default active health-check path under the API root.
    pub fn health_path(self) -> &'static str {
        self.descriptor().health_path
    }
}
