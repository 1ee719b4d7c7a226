//! The translator contract: a provider's stream in, the client's stream out, fed any slice of
//! bytes at a time. Provider decoders, output guardrails and client-API encoders all implement
//! [`StreamTranslator`]; [`Chain`] joins two of them.

use bytes::{Bytes, BytesMut};

use super::sse::{FeedError, SseEvent, SseParser, MAX_EVENT_BYTES};
use super::{ApiError, Finding, Usage};

/// Turns a provider's response stream into the client's OpenAI SSE stream, incrementally.
///
/// `feed` may be given any slice of the upstream body; it appends whatever is ready for the
/// client to `out`. An `Err` means the stream is broken (an error event, garbage, an oversize
/// event): the caller sends the error as a final SSE event and ends the stream without `[DONE]`.
pub trait StreamTranslator: Send {
    fn feed(&mut self, input: &[u8], out: &mut BytesMut) -> Result<(), ApiError>;
    /// The upstream body ended cleanly. `Err` when the stream was incomplete.
    fn finish(&mut self, out: &mut BytesMut) -> Result<(), ApiError>;
    /// Whether the terminal event has been seen (nothing more will be emitted).
    fn is_done(&self) -> bool;
    /// Usage seen so far.
    fn usage(&self) -> Option<Usage>;
    /// The stream was ended on sluice's side (a guardrail blocked it): the provider's
    /// connection must be closed rather than drained, so that it stops generating.
    fn abandon_upstream(&self) -> bool {
        false
    }
    /// What output guardrails did to this stream (names and kinds, never text).
    fn findings(&self) -> Vec<Finding> {
        Vec::new()
    }
    /// The finish reasons seen, when a stage watches for them (traces).
    fn finish_reasons(&self) -> Vec<String> {
        Vec::new()
    }
    /// The final event(s) that tell the client the stream failed, in the client's API.
    fn error_event(&mut self, e: &ApiError) -> Bytes {
        e.sse_event()
    }
}

/// The SSE framing shared by the stream translators: an incremental parser.
pub struct SseInput {
    parser: SseParser,
}

impl SseInput {
    pub fn new() -> Self {
        SseInput {
            parser: SseParser::new(MAX_EVENT_BYTES),
        }
    }
}

impl Default for SseInput {
    fn default() -> Self {
        Self::new()
    }
}

/// A translator that consumes a provider's SSE stream one event at a time; it is a
/// [`StreamTranslator`] through the framing in [`SseInput`].
pub trait SseEvents: Send {
    fn input(&mut self) -> &mut SseInput;
    /// Handles one complete event; appends whatever the client should get to `out`.
    fn event(&mut self, ev: &SseEvent<'_>, out: &mut BytesMut) -> Result<(), ApiError>;
    /// The terminal event has been seen.
    fn done(&self) -> bool;
    /// The body ended cleanly; formats without a terminal event finish here.
    fn at_end(&mut self, _out: &mut BytesMut) {}
    fn usage_so_far(&self) -> Option<Usage>;
    /// See [`StreamTranslator::error_event`].
    fn error_event(&mut self, e: &ApiError) -> Bytes {
        e.sse_event()
    }
}

impl<T: SseEvents> StreamTranslator for T {
    fn feed(&mut self, input: &[u8], out: &mut BytesMut) -> Result<(), ApiError> {
        if self.done() {
            return Ok(());
        }
        // The parser is lent out while it hands events to `self`.
        let mut parser = std::mem::take(&mut self.input().parser);
        let r = parser.feed(input, |ev| self.event(&ev, out));
        self.input().parser = parser;
        r.map_err(feed_error)
    }

    fn finish(&mut self, out: &mut BytesMut) -> Result<(), ApiError> {
        if !self.done() {
            let mut parser = std::mem::take(&mut self.input().parser);
            let r = parser.finish(|ev| self.event(&ev, out));
            self.input().parser = parser;
            r?;
            self.at_end(out);
        }
        if self.done() {
            Ok(())
        } else {
            Err(truncated_stream())
        }
    }

    fn is_done(&self) -> bool {
        self.done()
    }

    fn usage(&self) -> Option<Usage> {
        self.usage_so_far()
    }

    fn error_event(&mut self, e: &ApiError) -> Bytes {
        SseEvents::error_event(self, e)
    }
}

/// Two stream stages: the output of `first` (OpenAI chunks) is the input of `second`.
pub struct Chain {
    first: Box<dyn StreamTranslator>,
    second: Box<dyn StreamTranslator>,
    scratch: BytesMut,
}

impl Chain {
    pub fn new(first: Box<dyn StreamTranslator>, second: Box<dyn StreamTranslator>) -> Self {
        Chain {
            first,
            second,
            scratch: BytesMut::new(),
        }
    }
}

impl StreamTranslator for Chain {
    fn feed(&mut self, input: &[u8], out: &mut BytesMut) -> Result<(), ApiError> {
        let r = self.first.feed(input, &mut self.scratch);
        let chunks = self.scratch.split();
        self.second.feed(&chunks, out)?;
        r
    }

    fn finish(&mut self, out: &mut BytesMut) -> Result<(), ApiError> {
        let r = self.first.finish(&mut self.scratch);
        let chunks = self.scratch.split();
        self.second.feed(&chunks, out)?;
        r?;
        self.second.finish(out)
    }

    fn is_done(&self) -> bool {
        self.second.is_done()
    }

    fn usage(&self) -> Option<Usage> {
        self.first.usage()
    }

    fn abandon_upstream(&self) -> bool {
        self.first.abandon_upstream()
    }

    fn findings(&self) -> Vec<Finding> {
        self.first.findings()
    }

    fn finish_reasons(&self) -> Vec<String> {
        self.first.finish_reasons()
    }

    fn error_event(&mut self, e: &ApiError) -> Bytes {
        self.second.error_event(e)
    }
}

/// What a [`Watched`] stage does with the pieces its inner stage produces: it sees them,
/// never changes them.
pub trait Watch: Send {
    /// What the inner stage appended; `end`: its stream is over.
    fn seen(&mut self, produced: &[u8], end: bool);

    /// The stream ends with an error event instead.
    fn failed(&mut self) {}

    /// The finish reasons, when the watch keeps them (else the inner stage's).
    fn finish_reasons(&self) -> Option<Vec<String>> {
        None
    }
}

/// A stage that passes its inner stage's output on unchanged and shows it to a [`Watch`];
/// every other part of the contract is the inner stage's.
pub struct Watched<W> {
    inner: Box<dyn StreamTranslator>,
    watch: W,
}

impl<W: Watch> Watched<W> {
    pub fn new(inner: Box<dyn StreamTranslator>, watch: W) -> Self {
        Watched { inner, watch }
    }
}

impl<W: Watch> StreamTranslator for Watched<W> {
    fn feed(&mut self, input: &[u8], out: &mut BytesMut) -> Result<(), ApiError> {
        let from = out.len();
        let r = self.inner.feed(input, out);
        self.watch.seen(&out[from..], false);
        r
    }

    fn finish(&mut self, out: &mut BytesMut) -> Result<(), ApiError> {
        let from = out.len();
        let r = self.inner.finish(out);
        self.watch.seen(&out[from..], true);
        r
    }

    fn is_done(&self) -> bool {
        self.inner.is_done()
    }

    fn usage(&self) -> Option<Usage> {
        self.inner.usage()
    }

    fn abandon_upstream(&self) -> bool {
        self.inner.abandon_upstream()
    }

    fn findings(&self) -> Vec<Finding> {
        self.inner.findings()
    }

    fn finish_reasons(&self) -> Vec<String> {
        self.watch
            .finish_reasons()
            .unwrap_or_else(|| self.inner.finish_reasons())
    }

    fn error_event(&mut self, e: &ApiError) -> Bytes {
        self.watch.failed();
        self.inner.error_event(e)
    }
}

/// The error for a stream that ended before its terminal event.
pub fn truncated_stream() -> ApiError {
    ApiError::bad_gateway("The upstream provider ended the stream before it was complete.")
        .with_code("upstream_stream_truncated")
}

/// The error for a stream event (or line) larger than `limit` bytes.
pub fn oversize_event(limit: usize) -> ApiError {
    ApiError::bad_gateway(format!(
        "The upstream provider sent a stream event larger than {limit} bytes."
    ))
    .with_code("upstream_stream_error")
}

/// Why a stream's framing stopped, as the client is told: a translator's own error, or an
/// event past the limit.
pub fn feed_error(e: FeedError<ApiError>) -> ApiError {
    match e {
        FeedError::Handler(e) => e,
        FeedError::TooLarge(e) => oversize_event(e.0),
    }
}

/// The error for a stream event whose data is not JSON.
pub fn bad_stream_event() -> ApiError {
    ApiError::bad_gateway("The upstream provider sent a stream event that is not valid JSON.")
        .with_code("upstream_stream_error")
}
