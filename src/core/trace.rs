//! W3C Trace Context (`traceparent` / `tracestate`) and what a request records for its trace:
//! the ids, the sampling decision and one entry per upstream attempt. Spans are built from
//! these at the request's end (`trace::spans`); the request path only fills them in.

use std::time::{Duration, SystemTime};

/// The longest `tracestate` passed on (W3C: at least 512 characters must be kept).
const MAX_TRACESTATE: usize = 512;

/// A client's `traceparent`, parsed strictly (version `00`, or a later version read as `00`
/// per the spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

impl TraceParent {
    /// Parses a `traceparent` value; `None` when malformed (the request then starts a new
    /// trace).
    pub fn parse(value: &str) -> Option<TraceParent> {
        let v = value.trim();
        let parts: Vec<&str> = v.splitn(5, '-').collect();
        if parts.len() < 4 {
            return None;
        }
        let (version, trace, span, flags) = (parts[0], parts[1], parts[2], parts[3]);
        let version = lower_hex::<1>(version)?[0];
        if version == 0xff || (version == 0 && parts.len() != 4) {
            return None;
        }
        let trace_id = lower_hex::<16>(trace)?;
        let span_id = lower_hex::<8>(span)?;
        // A later version may add fields after the flags, separated by `-`.
        let flags = lower_hex::<1>(flags)?[0];
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceParent {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }
}

/// `N` bytes from exactly `2N` lowercase hex digits.
fn lower_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// A `tracestate` value kept as sent when it is plausible (printable ASCII, bounded);
/// otherwise dropped, as the spec allows.
pub fn parse_tracestate(value: &str) -> Option<String> {
    let v = value.trim();
    if v.is_empty() || v.len() > MAX_TRACESTATE || !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return None;
    }
    Some(v.to_string())
}

/// The trace of one request: its ids, the client's span when it sent one, and whether the
/// spans are recorded and exported.
#[derive(Debug, Clone)]
pub struct RequestTrace {
    pub trace_id: [u8; 16],
    /// The request span (SERVER).
    pub span_id: [u8; 8],
    /// The client's span, from its `traceparent`.
    pub parent: Option<[u8; 8]>,
    pub tracestate: Option<String>,
    pub sampled: bool,
    /// Wall-clock time the request started.
    pub start: SystemTime,
    /// The client's HTTP method: the span's name until the operation is known.
    pub method: String,
    /// `gen_ai.operation.name` (`chat`, `embeddings`), once the endpoint is known.
    pub operation: Option<&'static str>,
    /// One entry per upstream attempt, in order.
    pub attempts: Vec<AttemptTrace>,
    /// Finish reasons of the answer (`stop`, `length`, …), when sampled.
    pub finish_reasons: Vec<String>,
    /// Whether the answer came from sluice's response cache. Set by the cache when it
    /// serves a request; `None` where no cache was consulted.
    pub cache_hit: Option<bool>,
}

impl RequestTrace {
    /// The `traceparent` a provider gets for the attempt span `span_id`.
    pub fn traceparent_for(&self, span_id: &[u8; 8]) -> String {
        format!(
            "00-{}-{}-{}",
            hex::encode(self.trace_id),
            hex::encode(span_id),
            if self.sampled { "01" } else { "00" }
        )
    }
}

/// One upstream attempt, as its span shows it.
#[derive(Debug, Clone)]
pub struct AttemptTrace {
    pub span_id: [u8; 8],
    /// The provider's config name.
    pub provider: String,
    /// `gen_ai.provider.name` of the provider's kind.
    pub system: &'static str,
    /// The provider's model name.
    pub model: String,
    pub host: String,
    pub port: u16,
    /// From the request's start.
    pub start: Duration,
    pub end: Duration,
    /// The provider's HTTP status, when it answered.
    pub status: Option<u16>,
    /// `success`, `stream_error`, `retry`, `error`, `client_gone`, or `pending` while running.
    pub outcome: &'static str,
    /// A low-cardinality error label (`error.type`) when it failed.
    pub error: Option<String>,
}

/// A random, non-zero span id.
pub fn new_span_id() -> [u8; 8] {
    loop {
        let id: [u8; 8] = rand::random();
        if id != [0; 8] {
            return id;
        }
    }
}

/// A random, non-zero trace id.
pub fn new_trace_id() -> [u8; 16] {
    loop {
        let id: [u8; 16] = rand::random();
        if id != [0; 16] {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_parsed_strictly() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let tp = TraceParent::parse(ok).unwrap();
        assert!(tp.sampled);
        assert_eq!(hex::encode(tp.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex::encode(tp.span_id), "00f067aa0ba902b7");
        let unsampled = TraceParent::parse(&ok.replace("-01", "-00")).unwrap();
        assert!(!unsampled.sampled);
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
        // A later version may carry more fields.
        assert!(TraceParent::parse(&format!("01{}-more", &ok[2..])).is_some());
    }

    #[test]
    fn tracestate_is_bounded() {
        assert_eq!(parse_tracestate(" a=1,b=2 ").as_deref(), Some("a=1,b=2"));
        assert_eq!(parse_tracestate(""), None);
        assert_eq!(parse_tracestate(&"a".repeat(600)), None);
        assert_eq!(parse_tracestate("a=\u{e9}"), None);
    }
}
