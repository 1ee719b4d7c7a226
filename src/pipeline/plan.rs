//! The plan: everything needed to send one admitted request to any of its deployments, and
//! what each deployment's wire needs — the rendered body, the path, the stream translator.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::body::BodyHold;
use super::decode::Request;
use super::guard_output;
use super::guard_webhook::Tap;
use crate::cache::assemble::{tee, tee_beside, Capture};
use crate::core::{ApiError, StreamTranslator};
use crate::front::{passthrough_refusal, Endpoint, Front, FrontDoor};
use crate::guardrails::Policy;
use crate::pipeline::keyring::Key;
use crate::providers::openai::{takes_raw_body, RawBody};
use crate::providers::Wire;
use crate::routing::RouteState;

pub(super) struct Plan {
    pub endpoint: Endpoint,
    pub front: Front,
    pub route: Arc<RouteState>,
    /// The chat form; rendered for each deployment that is tried. With `raw`, only the members
    /// sluice reads itself.
    pub body: Map<String, Value>,
    /// The client's body as received, rendered without a parse (see `decode::decode_raw`).
    pub raw: Option<RawBody>,
    pub stream: bool,
    pub client_wants_usage: bool,
    /// The key's guardrails; its output rules apply to the answer.
    pub guardrails: Arc<Policy>,
    /// The body as the client sent it (other doors), for deployments that speak its API.
    pub native: Option<Map<String, Value>>,
    /// Where a complete answer in the chat form is left for the response cache (with the
    /// largest entry it takes); `None` when the answer is not to be stored.
    pub capture: Option<(Arc<Capture>, usize)>,
    /// The body last rendered, for a wire and model: replayed on every attempt that uses them.
    rendered: Option<(Wire, String, Bytes)>,
    /// The request body's share of `limits.max_inflight_body_bytes`, given back with the
    /// forms.
    hold: Option<BodyHold>,
}

impl Request {
    pub(super) fn into_plan(
        self,
        key: &Key,
        front: Front,
        capture: Option<(Arc<Capture>, usize)>,
        hold: BodyHold,
    ) -> Plan {
        let client_wants_usage = super::cache::wants_usage(self.stream, self.members());
        Plan {
            endpoint: self.endpoint,
            front,
            route: self.route,
            body: self.chat,
            raw: self.raw,
            stream: self.stream,
            client_wants_usage,
            guardrails: key.guardrails.clone(),
            native: self.client,
            capture,
            rendered: None,
            hold: Some(hold),
        }
    }
}

impl Plan {
    pub fn door(&self) -> &'static dyn FrontDoor {
        self.front.door()
    }

    /// The public model name.
    pub fn public(&self) -> &str {
        &self.route.route.name
    }

    /// Whether the client's own body goes to a `wire` deployment unchanged (but for the
    /// model).
    pub fn is_native(&self, wire: Wire) -> bool {
        self.native.is_some()
            && self
                .door()
                .native_for(self.endpoint, wire.kind, self.guardrails.has_output())
    }

    /// The upstream body for `model` in the `wire` format: rendered once per wire and model,
    /// replayed on every attempt that uses them.
    pub fn body_for(&mut self, wire: Wire, model: &str) -> Result<Bytes, ApiError> {
        if let Some((w, m, body)) = &self.rendered {
            if *w == wire && m == model {
                return Ok(body.clone());
            }
        }
        let body = self.render(wire, model)?;
        self.rendered = Some((wire, model.to_string(), body.clone()));
        Ok(body)
    }

    /// Drops every form of the request — parsed, as received, rendered — once an answer has
    /// reached the client and no other attempt can follow: a stream can last minutes, and a
    /// prompt of tens of KiB is not kept that long for nothing.
    pub fn forget_request(&mut self) {
        self.body = Map::new();
        self.raw = None;
        self.native = None;
        self.rendered = None;
        self.hold = None;
    }

    /// The upstream body for `model` in the `wire` format.
    fn render(&mut self, wire: Wire, model: &str) -> Result<Bytes, ApiError> {
        if self.is_native(wire) {
            let native = self.native.as_ref().expect("is_native checked it");
            return Ok(crate::front::native::render(native, model));
        }
        if self.endpoint.passthrough_only() {
            return Err(passthrough_refusal());
        }
        if let Some(raw) = &self.raw {
            if takes_raw_body(wire.kind) {
                return Ok(raw.render(model, self.stream));
            }
            // Only deployments that take it are planned with a raw body; should another
            // come, it gets the parsed body, as on the tree path.
            self.body =
                serde_json::from_slice(&raw.text).map_err(|e| ApiError::invalid_json(&e))?;
            self.raw = None;
        }
        let embeddings = !self.endpoint.is_chat();
        wire.render(&mut self.body, model, self.stream, embeddings)
    }

    /// The upstream path (under the API root) for `model` in the `wire` format.
    pub fn path(&self, wire: Wire, model: &str) -> String {
        if self.is_native(wire) {
            return self.door().native_path(self.endpoint).into();
        }
        wire.path(!self.endpoint.is_chat(), model, self.stream)
    }

    /// The translator for a streamed answer from a `wire` deployment: the provider's stream
    /// → OpenAI chunks → output guardrails → the client's API. The guardrails copy the text
    /// they release to `tap` when given; with `watch`, the OpenAI chunks' finish reasons are
    /// recorded (traces).
    pub fn stream_translator(
        &self,
        wire: Wire,
        tap: Option<Tap>,
        watch: bool,
    ) -> Box<dyn StreamTranslator> {
        let public = self.public();
        if self.is_native(wire) {
            if let Some(t) = self.door().native_stream(public) {
                let side = self.door().native_stream_as_chunks(public);
                return match (&self.capture, side) {
                    (Some((capture, max)), Some(side)) => {
                        tee_beside(t, side, capture.clone(), *max)
                    }
                    _ => t,
                };
            }
        }
        let t = wire.stream(public, self.client_wants_usage);
        let t = if watch { super::traced::watch(t) } else { t };
        let mut t = guard_output::guarded(t, &self.guardrails, tap);
        if let Some((capture, max)) = &self.capture {
            t = tee(t, capture.clone(), *max);
        }
        self.front.encode_stream(t, public)
    }
}
