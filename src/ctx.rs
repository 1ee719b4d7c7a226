//! Per-request state, shared by the proxy phases.

use std::time::{Duration, Instant};

use crate::core::trace::RequestTrace;
use crate::core::Usage;
use crate::front::Front;
use crate::guardrails::Finding;

/// What one request has done so far; read by the logging phase.
#[derive(Debug)]
pub struct Ctx {
    pub request_id: String,
    pub start: Instant,
    /// Name of the gateway key that authenticated the request.
    pub key_name: Option<String>,
    /// The team the request was made for (a managed key's `team`), for the ledger.
    pub team: Option<String>,
    /// Public model name.
    pub model: Option<String>,
    /// Provider config name of the deployment used.
    pub provider: Option<String>,
    /// The provider's model name.
    pub upstream_model: Option<String>,
    pub stream: bool,
    /// Status sent to the client (0 until a response was started).
    pub status: u16,
    /// Low-cardinality error label, when the request failed.
    pub error: Option<&'static str>,
    /// Attempts made upstream (1 without retries).
    pub attempts: u32,
    /// Attempts that moved to another deployment than the one before.
    pub failovers: u32,
    /// The limit that refused the request, as `scope:kind` (`key:requests`, `model:tokens`).
    pub limit: Option<String>,
    /// Upstream status, when a provider answered.
    pub upstream_status: Option<u16>,
    pub usage: Option<Usage>,
    /// `usage` is the provider's final report (a stream that ended before it reports only
    /// part of what the provider generated).
    pub usage_final: bool,
    /// Time to the first byte of the upstream body.
    pub ttfb: Option<Duration>,
    /// The client went away before the answer was complete.
    pub client_gone: bool,
    /// Headers added to every response of this request (rate-limit state).
    pub extra_headers: Vec<(&'static str, String)>,
    /// What guardrails did, by direction (`input` or `output`): names and kinds only.
    pub guardrails: Vec<(&'static str, Finding)>,
    /// The API the client speaks; errors and answers go back in its shape.
    pub front: Front,
    /// What the response cache did (`hit`, `miss`, `bypass`); `None` without `cache:`.
    pub cache: Option<&'static str>,
    /// The request's trace, when tracing is configured (sampled or not).
    pub trace: Option<RequestTrace>,
}

impl Ctx {
    pub fn new() -> Self {
        Ctx {
            request_id: String::new(),
            start: Instant::now(),
            key_name: None,
            team: None,
            model: None,
            provider: None,
            upstream_model: None,
            stream: false,
            status: 0,
            error: None,
            attempts: 0,
            failovers: 0,
            limit: None,
            upstream_status: None,
            usage: None,
            usage_final: false,
            ttfb: None,
            client_gone: false,
            extra_headers: Vec::new(),
            guardrails: Vec::new(),
            front: Front::OpenAi,
            cache: None,
            trace: None,
        }
    }
}

impl Ctx {
    /// The trace when its spans are recorded: what the request path fills in only then.
    pub fn sampled_trace(&mut self) -> Option<&mut RequestTrace> {
        self.trace.as_mut().filter(|t| t.sampled)
    }
}

impl Default for Ctx {
    fn default() -> Self {
        Self::new()
    }
}
