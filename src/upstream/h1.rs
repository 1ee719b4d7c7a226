//! A provider's HTTP/1.1 answer, read by sluice: the status line and headers, then the body
//! by its framing (`content-length`, chunked, or up to the connection's close).
//!
//! Pingora's client session gave every answer a 64 KiB body buffer and a 4 KiB header buffer
//! of its own, and copied each piece of the body out of them; an open stream held both for
//! its whole life. Here one buffer serves the header and the body, grows only as far as a
//! read needs, and body pieces leave it without a copy (`split().freeze()`). The framing
//! follows RFC 9112 §6: `transfer-encoding` ending in `chunked` wins over `content-length`,
//! any other transfer coding runs to the close, conflicting lengths are refused, and 1xx,
//! 204 and 304 answers have no body. A connection is reusable only when its answer was read
//! to the end with nothing after it, and neither side asked to close it.

use bytes::{Buf, Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::protocols::Stream;
use pingora::{Error, ErrorType, Result};
use tokio::io::AsyncReadExt;

/// Bytes asked of the socket by a first read: a stream's events, and a small answer with its
/// header, are a few hundred bytes. Every open stream holds this much.
const READ_SIZE: usize = 1 << 10;
/// Largest read: an answer that keeps filling its reads gets larger ones, up to this.
const MAX_READ_SIZE: usize = 64 << 10;
/// Largest response header (status line and fields) accepted.
const MAX_HEADER: usize = 64 << 10;
/// Most header fields accepted.
const MAX_FIELDS: usize = 256;
/// Largest chunk-size line (with extensions) or trailer section accepted.
const MAX_LINE: usize = 8 << 10;

/// Where the body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// No header read yet.
    Header,
    /// `content-length`: bytes still to come.
    Length(u64),
    /// Chunked: a chunk-size line is next.
    ChunkSize,
    /// Chunked: bytes of the current chunk still to come.
    ChunkData(u64),
    /// Chunked: the CRLF after a chunk's data is next.
    ChunkEnd,
    /// Chunked: the trailer section (ended by an empty line) is next.
    Trailers,
    /// Up to the connection's close.
    Close,
    /// Read to the end.
    Done,
}

/// One exchange's answer on an HTTP/1.1 connection to a provider.
pub struct Answer {
    stream: Stream,
    /// Read from the socket, not yet handed out.
    buf: BytesMut,
    header: Option<Box<ResponseHeader>>,
    body: Body,
    /// The connection may carry another request once the answer has been read.
    keep_alive: bool,
    /// Room asked for before the next read.
    read_size: usize,
}

fn invalid(why: impl Into<String>) -> Box<Error> {
    Error::explain(ErrorType::InvalidHTTPHeader, why.into())
}

fn closed(during: &'static str) -> Box<Error> {
    Error::explain(
        ErrorType::ConnectionClosed,
        format!("the provider closed the connection {during}"),
    )
}

/// Whether a comma-separated header value lists `token` (case-insensitive).
pub(crate) fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

impl Answer {
    /// An answer to come on `stream` (see [`Answer::requested`] for what the request asks of
    /// the connection).
    pub fn new(stream: Stream) -> Self {
        Answer {
            stream,
            buf: BytesMut::new(),
            header: None,
            body: Body::Header,
            keep_alive: true,
            read_size: READ_SIZE,
        }
    }

    /// Reads more from the socket; `Ok(false)` at its end.
    ///
    /// Pieces handed out leave the front of the buffer; once they are dropped, `reserve`
    /// takes the room back from the start, so a stream's reads keep landing in the same
    /// first page rather than walking through the buffer.
    async fn fill(&mut self) -> Result<bool> {
        if self.buf.capacity() - self.buf.len() < self.read_size {
            self.buf.reserve(self.read_size);
        }
        let room = self.buf.capacity() - self.buf.len();
        let n = self
            .stream
            .read_buf(&mut self.buf)
            .await
            .map_err(|e| Error::because(ErrorType::ReadError, "while reading the answer", e))?;
        if n == room {
            self.read_size = (self.read_size * 2).min(MAX_READ_SIZE);
        }
        Ok(n > 0)
    }

    /// Reads the header of the final answer, skipping informational (1xx) ones.
    pub async fn read_header(&mut self) -> Result<()> {
        for _ in 0..4 {
            self.read_one_header().await?;
            if !self.header().is_some_and(|h| h.status.is_informational()) {
                return Ok(());
            }
            self.body = Body::Header;
        }
        Err(invalid("too many informational responses"))
    }

    async fn read_one_header(&mut self) -> Result<()> {
        // Where the search for the header's end resumes: a header trickled in byte by byte
        // is parsed once it can be complete, not after every read.
        let mut scanned = 0usize;
        loop {
            let from = scanned.saturating_sub(2);
            scanned = self.buf.len();
            let ends = self.buf[from..]
                .windows(2)
                .any(|w| w == b"\n\n" || w == b"\n\r");
            if ends && self.parse_header()? {
                return Ok(());
            }
            if self.buf.len() > MAX_HEADER {
                return Err(invalid(format!(
                    "response header larger than {MAX_HEADER} bytes"
                )));
            }
            if !self.fill().await? {
                return Err(closed("before its answer's header"));
            }
        }
    }

    /// Parses a complete header at the start of the buffer; `Ok(false)` when it is not
    /// complete yet.
    fn parse_header(&mut self) -> Result<bool> {
        let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
        let mut resp = httparse::Response::new(&mut fields);
        let len = match resp.parse(&self.buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(false),
            Err(e) => return Err(invalid(format!("invalid response header: {e}"))),
        };
        let code = resp.code.unwrap_or(0);
        let mut h = ResponseHeader::build_no_case(code, Some(resp.headers.len()))
            .map_err(|_| invalid(format!("invalid status {code}")))?;
        let http10 = resp.version == Some(0);
        if http10 {
            h.set_version(http::Version::HTTP_10);
        }
        let (mut length, mut chunked, mut coded) = (None::<u64>, false, false);
        let (mut close, mut keep) = (false, false);
        for f in resp.headers.iter() {
            let name = http::HeaderName::from_bytes(f.name.as_bytes())
                .map_err(|_| invalid("invalid header name"))?;
            let value = http::HeaderValue::from_bytes(f.value)
                .map_err(|_| invalid("invalid header value"))?;
            if name == http::header::CONTENT_LENGTH {
                let n = std::str::from_utf8(f.value)
                    .ok()
                    .map(str::trim)
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| invalid("invalid content-length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(invalid("conflicting content-length values"));
                }
                length = Some(n);
            } else if name == http::header::TRANSFER_ENCODING {
                let last = f.value.rsplit(|b| *b == b',').next().unwrap_or_default();
                chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
                coded = true;
            } else if name == http::header::CONNECTION {
                close |= has_token(f.value, b"close");
                keep |= has_token(f.value, b"keep-alive");
            }
            h.append_header(name, value)
                .map_err(|_| invalid("invalid header"))?;
        }
        self.buf.advance(len);
        self.keep_alive &= !close && (!http10 || keep);
        self.body = match code {
            100..=199 => Body::Header,
            204 | 304 => Body::Done,
            _ if coded && chunked => Body::ChunkSize,
            // A transfer coding that does not end in chunked: the close ends the body.
            _ if coded => Body::Close,
            _ => match length {
                Some(0) => Body::Done,
                Some(n) => Body::Length(n),
                None => Body::Close,
            },
        };
        if self.body == Body::Close {
            self.keep_alive = false;
        }
        self.header = Some(Box::new(h));
        Ok(true)
    }

    /// The connection, to write the request on.
    pub fn stream_mut(&mut self) -> &mut Stream {
        &mut self.stream
    }

    /// Notes what the request asked of the connection: `closing` (a `connection: close`)
    /// means it is not reused after this answer.
    pub fn requested(&mut self, closing: bool) {
        self.keep_alive &= !closing;
    }

    /// The answer's header, once read.
    pub fn header(&self) -> Option<&ResponseHeader> {
        self.header.as_deref()
    }

    /// The next piece of the body; `None` once it has all been read.
    pub async fn read_body(&mut self) -> Result<Option<Bytes>> {
        loop {
            match self.body {
                Body::Header => return Err(invalid("the body was read before the header")),
                Body::Done => return Ok(None),
                Body::Length(left) | Body::ChunkData(left) if !self.buf.is_empty() => {
                    let n = self
                        .buf
                        .len()
                        .min(usize::try_from(left).unwrap_or(usize::MAX));
                    let rest = left - n as u64;
                    self.body = match (self.body, rest) {
                        (Body::Length(_), 0) => Body::Done,
                        (Body::Length(_), _) => Body::Length(rest),
                        (_, 0) => Body::ChunkEnd,
                        _ => Body::ChunkData(rest),
                    };
                    return Ok(Some(self.buf.split_to(n).freeze()));
                }
                Body::Close if !self.buf.is_empty() => return Ok(Some(self.buf.split().freeze())),
                Body::ChunkSize => {
                    if let Some(size) = self.chunk_size()? {
                        self.body = if size == 0 {
                            Body::Trailers
                        } else {
                            Body::ChunkData(size)
                        };
                        continue;
                    }
                }
                Body::ChunkEnd if self.buf.len() >= 2 => {
                    if &self.buf[..2] != b"\r\n" {
                        return Err(invalid("a chunk does not end with CRLF"));
                    }
                    self.buf.advance(2);
                    self.body = Body::ChunkSize;
                    continue;
                }
                Body::Trailers => {
                    if let Some(end) = self.trailers_end()? {
                        self.buf.advance(end);
                        self.body = Body::Done;
                        continue;
                    }
                }
                _ => {}
            }
            if !self.fill().await? {
                if self.body == Body::Close {
                    self.body = Body::Done;
                    continue;
                }
                return Err(closed("before the end of its answer"));
            }
        }
    }

    /// Parses a chunk-size line at the start of the buffer (and consumes it).
    fn chunk_size(&mut self) -> Result<Option<u64>> {
        match httparse::parse_chunk_size(&self.buf) {
            Ok(httparse::Status::Complete((len, size))) => {
                self.buf.advance(len);
                Ok(Some(size))
            }
            Ok(httparse::Status::Partial) if self.buf.len() > MAX_LINE => {
                Err(invalid("chunk-size line too long"))
            }
            Ok(httparse::Status::Partial) => Ok(None),
            Err(_) => Err(invalid("invalid chunk size")),
        }
    }

    /// The length of the trailer section at the start of the buffer, up to and including the
    /// empty line that ends it; `None` while it is incomplete.
    fn trailers_end(&self) -> Result<Option<usize>> {
        let mut at = 0;
        while let Some(eol) = self.buf[at..].windows(2).position(|w| w == b"\r\n") {
            if eol == 0 {
                return Ok(Some(at + 2));
            }
            at += eol + 2;
        }
        if self.buf.len() > MAX_LINE {
            return Err(invalid("trailer section too long"));
        }
        Ok(None)
    }

    /// Whether the body has been read to its end.
    pub fn is_done(&self) -> bool {
        self.body == Body::Done
    }

    /// The connection, when it can carry another request: the answer read to its end,
    /// nothing after it, and no side asked to close.
    pub fn reusable(self) -> Option<Stream> {
        (self.keep_alive && self.is_done() && self.buf.is_empty()).then_some(self.stream)
    }
}

#[cfg(test)]
mod tests;
