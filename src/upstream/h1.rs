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

use crate::core::fields::{self, HeaderFields};
use crate::core::framing::{self, header_may_end, Fields, Framing, Step};
use pingora::protocols::Stream;
use pingora::{Error, ErrorType, Result};

/// Bytes asked of the socket by a first read: a stream's events, and a small answer with its
/// header, are a few hundred bytes. Every open stream holds this much.
const READ_SIZE: usize = 1 << 10;
/// Largest read: an answer that keeps filling its reads gets larger ones, up to this.
const MAX_READ_SIZE: usize = 64 << 10;
/// Largest response header (status line and fields) accepted.
const MAX_HEADER: usize = 64 << 10;
/// Most header fields accepted.
const MAX_FIELDS: usize = 256;
/// One exchange's answer on an HTTP/1.1 connection to a provider.
pub struct Answer {
    stream: Stream,
    /// Read from the socket, not yet handed out.
    buf: BytesMut,
    /// The status of the answer's header, once read.
    status: Option<u16>,
    /// Its fields.
    fields: HeaderFields,
    /// The body's framing; `None` until a (final) header has been read.
    body: Option<Framing>,
    /// The connection may carry another request once the answer has been read.
    keep_alive: bool,
    /// Room asked for before the next read.
    read_size: usize,
}

/// Reads more from `stream` into `buf`; `Ok(false)` at its end.
///
/// Pieces handed out leave the front of the buffer; once they are dropped, `reserve` takes
/// the room back from the start, so a stream's reads keep landing in the same first page
/// rather than walking through the buffer.
async fn fill(stream: &mut Stream, buf: &mut BytesMut, read_size: &mut usize) -> Result<bool> {
    let n = framing::fill(stream, buf, read_size, MAX_READ_SIZE)
        .await
        .map_err(|e| Error::because(ErrorType::ReadError, "while reading the answer", e))?;
    Ok(n > 0)
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

impl Answer {
    /// An answer to come on `stream` (see [`Answer::requested`] for what the request asks of
    /// the connection).
    pub fn new(stream: Stream) -> Self {
        Answer {
            stream,
            buf: BytesMut::new(),
            status: None,
            fields: HeaderFields::default(),
            body: None,
            keep_alive: true,
            read_size: READ_SIZE,
        }
    }

    /// Reads more from the socket; `Ok(false)` at its end.
    async fn fill(&mut self) -> Result<bool> {
        fill(&mut self.stream, &mut self.buf, &mut self.read_size).await
    }

    /// Reads the header of the final answer, skipping informational (1xx) ones.
    pub async fn read_header(&mut self) -> Result<()> {
        for _ in 0..4 {
            self.read_one_header().await?;
            if !self.status.is_some_and(|s| (100..200).contains(&s)) {
                return Ok(());
            }
            self.body = None;
        }
        Err(invalid("too many informational responses"))
    }

    async fn read_one_header(&mut self) -> Result<()> {
        let mut scanned = 0usize;
        loop {
            if header_may_end(&self.buf, &mut scanned) && self.parse_header()? {
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
        if !(100..1000).contains(&code) {
            return Err(invalid(format!("invalid status {code}")));
        }
        let http10 = resp.version == Some(0);
        let header = &self.buf[..len];
        let mut fields = fields::Builder::new(resp.headers.len());
        let mut framing = Fields::default();
        for f in resp.headers.iter() {
            if !fields.push(header, f.name.as_bytes(), f.value) {
                return Err(invalid("invalid header value"));
            }
            framing.note(f.name.as_bytes(), f.value).map_err(invalid)?;
        }
        self.fields = fields.finish(header);
        self.buf.advance(len);
        self.keep_alive &= framing.keeps(http10);
        self.body = match code {
            100..=199 => None,
            204 | 304 => Some(Framing::Done),
            _ if framing.coded && framing.chunked => Some(Framing::ChunkSize),
            // A transfer coding that does not end in chunked: the close ends the body.
            _ if framing.coded => Some(Framing::Close),
            _ => Some(framing.length.map_or(Framing::Close, Framing::length)),
        };
        if self.body == Some(Framing::Close) {
            self.keep_alive = false;
        }
        self.status = Some(code);
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

    /// The answer's status, once its header is read.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The answer's header fields (names in lowercase).
    pub fn fields(&self) -> &HeaderFields {
        &self.fields
    }

    /// The next piece of the body; `None` once it has all been read.
    pub async fn read_body(&mut self) -> Result<Option<Bytes>> {
        let Some(body) = &mut self.body else {
            return Err(invalid("the body was read before the header"));
        };
        loop {
            match body.take(&mut self.buf).map_err(invalid)? {
                Step::Piece(p) => return Ok(Some(p)),
                Step::Done => return Ok(None),
                Step::More => {}
            }
            if !fill(&mut self.stream, &mut self.buf, &mut self.read_size).await?
                && !body.at_close()
            {
                return Err(closed("before the end of its answer"));
            }
        }
    }

    /// Whether the body has been read to its end.
    pub fn is_done(&self) -> bool {
        self.body.is_some_and(|b| b.is_done())
    }

    /// The connection, when it can carry another request: the answer read to its end,
    /// nothing after it, and no side asked to close.
    pub fn reusable(self) -> Option<Stream> {
        (self.keep_alive && self.is_done() && self.buf.is_empty()).then_some(self.stream)
    }
}

#[cfg(test)]
mod tests;
