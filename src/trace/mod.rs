//! OpenTelemetry traces: one SERVER span per request and one CLIENT span per upstream
//! attempt, with the GenAI semantic conventions, exported over OTLP/HTTP (protobuf).
//!
//! The request path only records: a [`RequestTrace`] on the context (ids from the client's
//! `traceparent` or new ones, the sampling decision, one entry per attempt). When the
//! request ends, [`Tracer::record`] builds the spans (`spans.rs`) and pushes them onto a
//! bounded queue — a full queue drops them and counts the drop, never waits. The exporter
//! (`export.rs`) batches the queue and POSTs to `<otlp_endpoint>/v1/traces` on its own
//! background service; failures are counted and logged at most once a minute.
//!
//! The exporter is sluice's own: the protobuf messages are written by hand (`proto.rs`) and
//! sent over HTTP/1.1 with tokio (and tokio-rustls for https). The OpenTelemetry SDK would
//! bring its own runtime plumbing and HTTP client stack next to Pingora's runtimes, and its
//! batch processor reports no drop counts sluice could export as metrics.

mod export;
mod proto;
mod spans;

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use prometheus::{IntCounter, IntCounterVec, Opts};
use tokio::sync::mpsc;

use crate::config::{ProviderKind, TracingSettings};
use crate::core::sync::lock;
use crate::core::trace::{new_span_id, new_trace_id, parse_tracestate, RequestTrace, TraceParent};
use crate::ctx::Ctx;
pub use export::TraceExporter;

/// Requests whose spans may wait for the exporter; more are dropped.
const QUEUE: usize = 4096;

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    F64(f64),
    Bool(bool),
    Strs(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Server,
    Client,
}

/// A span event (guardrail action, limit rejection).
#[derive(Debug, Clone)]
pub struct Event {
    pub time: u64,
    pub name: &'static str,
    pub attributes: Vec<(&'static str, Value)>,
}

/// A finished span, ready to encode. Times are Unix nanoseconds.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    /// Whether `parent` is the client's span (another process).
    pub remote_parent: bool,
    pub tracestate: Option<String>,
    pub name: String,
    pub kind: Kind,
    pub start: u64,
    pub end: u64,
    pub attributes: Vec<(&'static str, Value)>,
    pub events: Vec<Event>,
    /// Status ERROR with this message; `None` is UNSET.
    pub error: Option<String>,
}

/// The exporter's counters, on `/metrics`.
pub struct TraceStats {
    /// Spans the collector accepted.
    pub exported: IntCounter,
    /// Spans lost: `queue_full` (never queued) or `export_failed` (the POST failed).
    pub dropped: IntCounterVec,
    /// POSTs to the collector that failed (unreachable, timeout, non-2xx answer).
    pub export_failures: IntCounter,
}

impl TraceStats {
    fn new() -> TraceStats {
        let opts = |n: &str, h: &str| Opts::new(n, h).namespace("sluice");
        let dropped = IntCounterVec::new(
            opts(
                "trace_spans_dropped_total",
                "Spans not exported, by reason: queue_full (the export queue was full), \
                 export_failed (the collector could not be reached or refused them).",
            ),
            &["reason"],
        )
        .expect("valid metric");
        for r in ["queue_full", "export_failed"] {
            dropped.with_label_values(&[r]);
        }
        TraceStats {
            exported: IntCounter::with_opts(opts(
                "trace_spans_exported_total",
                "Spans the OTLP collector accepted.",
            ))
            .expect("valid metric"),
            dropped,
            export_failures: IntCounter::with_opts(opts(
                "trace_export_failures_total",
                "Exports to the OTLP collector that failed (unreachable, timeout, non-2xx).",
            ))
            .expect("valid metric"),
        }
    }

    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.exported.clone()),
            Box::new(self.dropped.clone()),
            Box::new(self.export_failures.clone()),
        ]
    }
}

/// Starts request traces and queues their spans for export.
pub struct Tracer {
    settings: TracingSettings,
    tx: mpsc::Sender<Vec<Span>>,
    rx: Mutex<Option<mpsc::Receiver<Vec<Span>>>>,
    pub stats: TraceStats,
}

impl Tracer {
    pub fn new(settings: &TracingSettings) -> Tracer {
        let (tx, rx) = mpsc::channel(QUEUE);
        Tracer {
            settings: settings.clone(),
            tx,
            rx: Mutex::new(Some(rx)),
            stats: TraceStats::new(),
        }
    }

    /// The trace of a request that starts now: the client's trace when its `traceparent`
    /// is valid (sampled as the client says), else a new one sampled by `sample_ratio`.
    pub fn start(
        &self,
        traceparent: Option<&str>,
        tracestate: Option<&str>,
        method: &str,
        ctx: &Ctx,
    ) -> RequestTrace {
        let parent = traceparent.and_then(TraceParent::parse);
        let (trace_id, sampled) = match parent {
            Some(p) => (p.trace_id, p.sampled),
            None => {
                let id = new_trace_id();
                (id, ratio_sampled(&id, self.settings.sample_ratio))
            }
        };
        RequestTrace {
            trace_id,
            span_id: new_span_id(),
            parent: parent.map(|p| p.span_id),
            tracestate: parent.and(tracestate).and_then(parse_tracestate),
            sampled,
            start: SystemTime::now()
                .checked_sub(ctx.start.elapsed())
                .unwrap_or_else(SystemTime::now),
            method: crate::core::error::clip(method, 16).to_string(),
            operation: None,
            attempts: Vec::new(),
            finish_reasons: Vec::new(),
            cache_hit: None,
        }
    }

    /// Builds the spans of a finished request and queues them; never waits.
    pub fn record(&self, ctx: &Ctx, status: u16) {
        let Some(trace) = ctx.trace.as_ref().filter(|t| t.sampled) else {
            return;
        };
        let spans = spans::build(trace, ctx, status);
        let n = spans.len() as u64;
        if self.tx.try_send(spans).is_err() {
            self.stats
                .dropped
                .with_label_values(&["queue_full"])
                .inc_by(n);
        }
    }

    /// The queue's receiving end, taken once by the exporter.
    fn take_queue(&self) -> Option<mpsc::Receiver<Vec<Span>>> {
        lock(&self.rx).take()
    }
}

/// The TraceIdRatioBased decision: the trace id's low 63 bits against `ratio`, so that
/// every service sampling by ratio keeps the same traces.
fn ratio_sampled(trace_id: &[u8; 16], ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    let mut low = [0u8; 8];
    low.copy_from_slice(&trace_id[8..]);
    let x = u64::from_be_bytes(low) >> 1;
    (x as f64) < ratio * (1u64 << 63) as f64
}

/// `gen_ai.provider.name` of a provider kind: the semantic conventions' well-known value,
/// else the kind's own name.
pub fn provider_name(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::OpenAi => "openai",
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::Gemini => "gcp.gemini",
        ProviderKind::Groq => "groq",
        ProviderKind::Xai => "x_ai",
        ProviderKind::Ollama => "ollama",
        ProviderKind::OpenAiCompatible => "openai_compatible",
    }
}

/// Nanoseconds since the Unix epoch of `start + offset`.
fn unix_nanos(start: SystemTime, offset: Duration) -> u64 {
    (start + offset)
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests;
