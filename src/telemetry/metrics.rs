//! Prometheus metrics, served on the admin listener at `/metrics`.
//!
//! Every label value comes from the config — model, provider, deployment and key *names* — or
//! from a small fixed set (status class, outcome), never from client input, so cardinality is
//! bounded by the config. Nothing secret is ever a label.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::routing::Router;

/// Buckets for request durations and time to first token: milliseconds to minutes.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
    600.0,
];
/// Buckets for the silence between two pieces of a stream.
const GAP_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub ttft: HistogramVec,
    pub chunk_gap: HistogramVec,
    pub tokens: IntCounterVec,
    pub attempts: IntCounterVec,
    pub failovers: IntCounterVec,
    pub active_streams: IntGauge,
    pub retry_budget_denied: IntCounter,
    pub guardrail_actions: IntCounterVec,
    /// Client connections open now.
    pub client_connections: IntGauge,
    /// Client connections closed at once because `server.max_connections` were open.
    pub client_connections_refused: IntCounter,
    /// Client connections closed because a request header did not arrive in time.
    pub client_header_timeouts: IntCounter,
    /// Request-body bytes held by requests in flight.
    pub body_bytes_in_flight: IntGauge,
    /// Requests refused because `limits.max_inflight_body_bytes` were held.
    pub body_budget_refused: IntCounter,
    /// Admin-listener requests by the role of who made them (`none` if unknown) and status.
    pub admin_requests: IntCounterVec,
    /// Admin-listener requests refused, by reason (see [`ADMIN_REFUSALS`]).
    pub admin_refused: IntCounterVec,
    deployment_available: IntGaugeVec,
    deployment_in_flight: IntGaugeVec,
}

/// Why the admin listener refuses a request: the client's network is not in `admin.allow`;
/// without a token, the request names a host that is not loopback; no usable token; a token
/// whose role is too low.
pub const ADMIN_REFUSALS: [&str; 4] = ["network", "host", "token", "role"];

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace("sluice")
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            opts("requests_total", "Client requests by outcome."),
            &["model", "key", "status_class", "stream"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::from(opts(
                "request_duration_seconds",
                "Time from request to the end of the response.",
            ))
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["model", "stream"],
        )
        .expect("valid metric");
        let ttft = HistogramVec::new(
            HistogramOpts::from(opts(
                "time_to_first_token_seconds",
                "Time from request to the first byte of the provider's answer body.",
            ))
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["model", "provider"],
        )
        .expect("valid metric");
        let chunk_gap = HistogramVec::new(
            HistogramOpts::from(opts(
                "stream_chunk_gap_seconds",
                "Silence between two consecutive pieces of a provider stream.",
            ))
            .buckets(GAP_BUCKETS.to_vec()),
            &["provider"],
        )
        .expect("valid metric");
        let tokens = IntCounterVec::new(
            opts("tokens_total", "Tokens reported by providers."),
            &["model", "provider", "key", "kind"],
        )
        .expect("valid metric");
        let attempts = IntCounterVec::new(
            opts(
                "upstream_attempts_total",
                "Attempts sent to providers, by outcome: success, retry (failed, retried or \
                 returned), error (a client error from the provider), stream_error (failed \
                 after the answer had started).",
            ),
            &["provider", "deployment", "outcome"],
        )
        .expect("valid metric");
        let failovers = IntCounterVec::new(
            opts(
                "failovers_total",
                "Attempts sent to a different deployment than the previous attempt.",
            ),
            &["model"],
        )
        .expect("valid metric");
        let active_streams =
            IntGauge::with_opts(opts("active_streams", "Streams being relayed to clients."))
                .expect("valid metric");
        let retry_budget_denied = IntCounter::with_opts(opts(
            "retry_budget_denied_total",
            "Retries not made because the retry budget was spent.",
        ))
        .expect("valid metric");
        let guardrail_actions = IntCounterVec::new(
            opts(
                "guardrail_actions_total",
                "Guardrail matches acted on, by guardrail, action (block, redact, log) and \
                 direction (input, output).",
            ),
            &["guardrail", "action", "direction"],
        )
        .expect("valid metric");
        let client_connections =
            IntGauge::with_opts(opts("client_connections", "Client connections open now."))
                .expect("valid metric");
        let client_connections_refused = IntCounter::with_opts(opts(
            "client_connections_refused_total",
            "Client connections closed on arrival because server.max_connections were open.",
        ))
        .expect("valid metric");
        let client_header_timeouts = IntCounter::with_opts(opts(
            "client_header_timeouts_total",
            "Client connections closed because a request header was not complete within \
             timeouts.request_header.",
        ))
        .expect("valid metric");
        let body_bytes_in_flight = IntGauge::with_opts(opts(
            "request_body_bytes_in_flight",
            "Request-body bytes held by requests in flight.",
        ))
        .expect("valid metric");
        let body_budget_refused = IntCounter::with_opts(opts(
            "request_body_budget_refused_total",
            "Requests refused with 503 because limits.max_inflight_body_bytes were held.",
        ))
        .expect("valid metric");
        let admin_requests = IntCounterVec::new(
            opts(
                "admin_requests_total",
                "Admin-listener requests, by the role of the token that made them (none when \
                 there was no usable token) and status code.",
            ),
            &["role", "status"],
        )
        .expect("valid metric");
        let admin_refused = IntCounterVec::new(
            opts(
                "admin_refused_total",
                "Admin-listener requests refused, by reason: network (not in admin.allow), host \
                 (no token configured and not a loopback host), token (missing, unknown or used \
                 outside its allow-list), role (too low).",
            ),
            &["reason"],
        )
        .expect("valid metric");
        for reason in ADMIN_REFUSALS {
            admin_refused.with_label_values(&[reason]);
        }
        let deployment_available = IntGaugeVec::new(
            opts(
                "deployment_available",
                "1 when a deployment takes traffic (provider healthy, not cooling down).",
            ),
            &["model", "provider", "deployment"],
        )
        .expect("valid metric");
        let deployment_in_flight = IntGaugeVec::new(
            opts("deployment_in_flight", "Attempts in flight per deployment."),
            &["model", "provider", "deployment"],
        )
        .expect("valid metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(ttft.clone()),
            Box::new(chunk_gap.clone()),
            Box::new(tokens.clone()),
            Box::new(attempts.clone()),
            Box::new(failovers.clone()),
            Box::new(active_streams.clone()),
            Box::new(retry_budget_denied.clone()),
            Box::new(guardrail_actions.clone()),
            Box::new(client_connections.clone()),
            Box::new(client_connections_refused.clone()),
            Box::new(client_header_timeouts.clone()),
            Box::new(body_bytes_in_flight.clone()),
            Box::new(body_budget_refused.clone()),
            Box::new(admin_requests.clone()),
            Box::new(admin_refused.clone()),
            Box::new(deployment_available.clone()),
            Box::new(deployment_in_flight.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Metrics {
            registry,
            requests,
            duration,
            ttft,
            chunk_gap,
            tokens,
            attempts,
            failovers,
            active_streams,
            retry_budget_denied,
            guardrail_actions,
            client_connections,
            client_connections_refused,
            client_header_timeouts,
            body_bytes_in_flight,
            body_budget_refused,
            admin_requests,
            admin_refused,
            deployment_available,
            deployment_in_flight,
        }
    }

    /// Adds a collector (e.g. the limiter's counters) to the registry.
    pub fn register(&self, c: Box<dyn prometheus::core::Collector>) {
        self.registry.register(c).expect("metric names are unique");
    }

    /// The text exposition, with deployment gauges refreshed from the router.
    pub fn render(&self, router: &Router) -> Vec<u8> {
        // A reload may have removed deployments: only the current ones are reported.
        self.deployment_available.reset();
        self.deployment_in_flight.reset();
        for (model, route) in router.routes() {
            for d in &route.deployments {
                let labels = [
                    model.as_str(),
                    d.deployment.provider.name.as_str(),
                    d.deployment.model.as_str(),
                ];
                self.deployment_available
                    .with_label_values(&labels)
                    .set(i64::from(router.is_available(d)));
                self.deployment_in_flight
                    .with_label_values(&labels)
                    .set(i64::from(router.in_flight(d)));
            }
        }
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding does not fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
