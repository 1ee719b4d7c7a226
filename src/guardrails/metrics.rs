//! The guardrails' own metrics, process-wide: the server registers [`collectors`] with its
//! registry. Labels are guardrail names from the config and small fixed sets, never text.

use std::sync::OnceLock;

use prometheus::core::Collector;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

struct Metrics {
    hidden: IntCounterVec,
    webhook_requests: IntCounterVec,
    webhook_seconds: HistogramVec,
    webhook_cache_hits: IntCounterVec,
}

fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| {
        let opts = |name: &str, help: &str| Opts::new(name, help).namespace("sluice");
        Metrics {
            hidden: IntCounterVec::new(
                opts(
                    "guardrail_hidden_characters_total",
                    "Requests (input) and answers (output) in which hidden characters were \
                     stripped or refused, by guardrail, direction and action (strip, block).",
                ),
                &["guardrail", "direction", "action"],
            )
            .expect("valid metric"),
            webhook_requests: IntCounterVec::new(
                opts(
                    "guardrail_webhook_requests_total",
                    "Calls to webhook guardrails, by guardrail and result (allow, block, \
                     redact, error, timeout).",
                ),
                &["guardrail", "result"],
            )
            .expect("valid metric"),
            webhook_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "guardrail_webhook_seconds",
                    "Time a webhook guardrail took to answer (cache hits not included).",
                )
                .namespace("sluice")
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
                &["guardrail"],
            )
            .expect("valid metric"),
            webhook_cache_hits: IntCounterVec::new(
                opts(
                    "guardrail_webhook_cache_hits_total",
                    "Webhook guardrail verdicts served from the verdict cache, by guardrail.",
                ),
                &["guardrail"],
            )
            .expect("valid metric"),
        }
    })
}

/// The collectors to register.
pub fn collectors() -> Vec<Box<dyn Collector>> {
    let m = metrics();
    vec![
        Box::new(m.hidden.clone()),
        Box::new(m.webhook_requests.clone()),
        Box::new(m.webhook_seconds.clone()),
        Box::new(m.webhook_cache_hits.clone()),
    ]
}

/// Hidden characters were stripped (`strip`) or refused (`block`).
pub(crate) fn hidden(guardrail: &str, direction: &str, action: &str) {
    metrics()
        .hidden
        .with_label_values(&[guardrail, direction, action])
        .inc();
}

/// A webhook call ended with `result` after `seconds`.
pub(crate) fn webhook(guardrail: &str, result: &str, seconds: f64) {
    let m = metrics();
    m.webhook_requests
        .with_label_values(&[guardrail, result])
        .inc();
    m.webhook_seconds
        .with_label_values(&[guardrail])
        .observe(seconds);
}

/// A webhook verdict came from the cache.
pub(crate) fn webhook_cache_hit(guardrail: &str) {
    metrics()
        .webhook_cache_hits
        .with_label_values(&[guardrail])
        .inc();
}
