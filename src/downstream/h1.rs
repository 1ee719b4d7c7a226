//! A client's HTTP/1.1 request and its answer, read and written by sluice.
//!
//! Pingora's server session gave every request a 4 KiB header buffer that its header's
//! values pointed into (held for as long as a stream lasted), a header map with a map of
//! names' case, a body reader and writer built for proxying, and a timer per read and per
//! write. Here the header is parsed from the connection's read buffer and copied once into
//! an allocation of its own size, where its fields are looked up ([`fields`]; no
//! header map); the buffer is let go once the body has been read.
//!
//! What it does as Pingora's did (RFC 9112): `transfer-encoding` ending in `chunked` wins over
//! `content-length` (and the connection closes after the answer), any other final coding or
//! a coding on an HTTP/1.0 request is refused, differing `content-length`s or several `host`s
//! are refused; an HTTP/1.1 connection is kept alive unless the client says `close`, an
//! HTTP/1.0 one only when it says `keep-alive`; an answer sent before the request's body was
//! read closes the connection; every answer gets `Date` and `Connection` headers (names written as Pingora wrote them); 204, 304
//! and answers to `HEAD` have no body. Bytes after a request's body (pipelining) are never
//! taken as a next request: the connection closes after the answer.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bytes::{Bytes, BytesMut};
use pingora::http::RequestHeader;
use pingora::protocols::l4::socket::SocketAddr;
use pingora::protocols::{SocketDigest, Stream};
use pingora::{Error, ErrorType, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use pingora::protocols::http::date;

use crate::core::framing::{self, header_may_end, Fields, Framing, Step};

use super::Head;
use crate::core::fields::{self, HeaderFields};

/// Room asked for by a first read: most requests' header and body fit.
const READ_SIZE: usize = 1 << 10;
/// Largest read: a body that keeps filling its reads gets larger ones, up to this.
const MAX_READ_SIZE: usize = 64 << 10;
/// Largest request header (request line and fields) accepted.
pub const MAX_HEADER: usize = 64 << 10;
/// Most header fields accepted.
const MAX_FIELDS: usize = 256;

/// The answer to a request whose header is malformed (the connection then closes).
pub const BAD_REQUEST: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\
    Cache-Control: private, no-store\r\nConnection: close\r\n\r\n";

fn invalid(why: impl Into<String>) -> Box<Error> {
    Error::explain(ErrorType::InvalidHTTPHeader, why.into())
}

/// How a request header read ended.
pub enum Read {
    /// A complete, valid header.
    Request(Box<Session>),
    /// The connection ended or failed before a byte of a request: nothing is owed.
    Closed,
    /// No byte of a request by its first deadline: nothing is owed.
    Silent,
    /// The header was not complete by its deadline.
    Late,
}

/// Reads a request header from `stream`: its first bytes by `first`, the whole header by
/// `whole` (one timer for both). A malformed header is an `InvalidHTTPHeader` error
/// (answered with a 400 by the caller); a connection that ends within a header, a
/// `ConnectionClosed` one.
pub async fn read_request(stream: &mut Stream, first: Instant, whole: Instant) -> Result<Read> {
    let mut buf = BytesMut::new();
    let mut size = READ_SIZE;
    // Where the search for the header's end resumes: a header trickled in byte by byte is
    // parsed once it can be complete, not after every read.
    let mut scanned = 0usize;
    // Registered with the runtime's timer only if the read waits.
    let timer = tokio::time::sleep_until(first);
    tokio::pin!(timer);
    loop {
        let read = tokio::select! {
            biased;
            n = framing::fill(stream, &mut buf, &mut size, MAX_READ_SIZE) => n,
            () = &mut timer => return Ok(if scanned == 0 { Read::Silent } else { Read::Late }),
        };
        let n = match read {
            Ok(n) => n,
            Err(_) if scanned == 0 => return Ok(Read::Closed),
            Err(e) => {
                return Err(Error::because(
                    ErrorType::ReadError,
                    "while reading a request header",
                    e,
                ))
            }
        };
        if n == 0 {
            if buf.is_empty() {
                return Ok(Read::Closed);
            }
            return Err(Error::explain(
                ErrorType::ConnectionClosed,
                "the client closed the connection within a request header",
            ));
        }
        if scanned == 0 {
            timer.set(tokio::time::sleep_until(whole));
        }
        if header_may_end(&buf, &mut scanned) {
            if let Some(session) = Session::parse(&mut buf)? {
                return Ok(Read::Request(session));
            }
        }
        if buf.len() > MAX_HEADER {
            return Err(invalid(format!(
                "request header larger than {MAX_HEADER} bytes"
            )));
        }
    }
}

/// What has been written of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    /// Nothing yet.
    Nothing,
    /// The header; then the body by this framing.
    Length(u64),
    Chunked,
    Close,
    /// The whole answer.
    Done,
}

/// One request on a client connection, from its header read to its answer written.
pub struct Session {
    stream: Option<Stream>,
    /// Read from the socket past the header, not yet taken.
    buf: BytesMut,
    read_size: usize,
    /// The method and target (Pingora's header, without fields).
    line: RequestHeader,
    fields: HeaderFields,
    body: Framing,
    /// The connection may carry another request after this one.
    keep: bool,
    out: Out,
    /// A `HEAD` request: its answer has no body.
    head: bool,
    write_timeout: Option<Duration>,
    /// The connection's addresses.
    digest: Option<Arc<SocketDigest>>,
}

impl Session {
    /// Parses a complete header at the start of `buf` into a session (the rest of `buf`
    /// moves into it); `Ok(None)` when the header is not complete.
    fn parse(buf: &mut BytesMut) -> Result<Option<Box<Session>>> {
        // Left uninitialised: filling 256 empty fields per request costs more than parsing.
        let mut slots = [const { std::mem::MaybeUninit::uninit() }; MAX_FIELDS];
        let mut req = httparse::Request::new(&mut []);
        let len = match req.parse_with_uninit_headers(buf, &mut slots) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(invalid(format!("invalid request header: {e}"))),
        };
        let method = req.method.unwrap_or_default();
        let path = req.path.unwrap_or_default();
        // Pingora's request line: the method and target checked and parsed as it does. The
        // fields are not put in its header map (see `fields`).
        let mut line = RequestHeader::build_no_case(method, path.as_bytes(), Some(0))
            .map_err(|_| invalid("invalid request line"))?;
        let http10 = req.version == Some(0);
        if http10 {
            line.set_version(http::Version::HTTP_10);
        }
        let header = &buf[..len];
        let mut fields = fields::Builder::new(req.headers.len());
        let mut framing = Fields::default();
        let mut hosts = 0;
        for f in req.headers.iter() {
            if !fields.push(header, f.name.as_bytes(), f.value) {
                return Err(invalid("invalid header value"));
            }
            framing.note(f.name.as_bytes(), f.value).map_err(invalid)?;
            hosts += usize::from(f.name.eq_ignore_ascii_case("host"));
        }
        if hosts > 1 {
            return Err(invalid("more than one host header"));
        }
        let body = if framing.coded {
            if http10 {
                return Err(invalid("an HTTP/1.0 request with a transfer-encoding"));
            }
            if !framing.chunked {
                return Err(invalid("a transfer-encoding that does not end in chunked"));
            }
            Framing::ChunkSize
        } else {
            Framing::length(framing.length.unwrap_or(0))
        };
        let mut keep = framing.keeps(http10);
        if framing.coded && framing.length.is_some() {
            // Both framings: the chunked one is read, the length dropped, and the connection
            // is not reused (RFC 9112 §6.1).
            fields.remove(header, "content-length");
            keep = false;
        }
        let fields = fields.finish(header);
        let head = line.method == http::Method::HEAD;
        let _ = buf.split_to(len);
        Ok(Some(Box::new(Session {
            stream: None,
            buf: std::mem::take(buf),
            read_size: READ_SIZE,
            line,
            fields,
            body,
            keep,
            out: Out::Nothing,
            head,
            write_timeout: None,
            digest: None,
        })))
    }

    /// The session of a request read from `stream`.
    pub fn attach(mut self: Box<Self>, stream: Stream) -> Box<Self> {
        self.digest = stream.get_socket_digest();
        self.stream = Some(stream);
        self
    }

    pub fn method(&self) -> &http::Method {
        &self.line.method
    }

    pub fn uri(&self) -> &http::Uri {
        &self.line.uri
    }

    /// The header's fields (names in lowercase).
    pub fn fields(&self) -> &HeaderFields {
        &self.fields
    }

    /// The connection closes after this answer.
    pub fn close_after(&mut self) {
        self.keep = false;
    }

    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_timeout = timeout;
    }

    pub fn client_addr(&self) -> Option<&SocketAddr> {
        self.digest.as_ref()?.peer_addr()
    }

    /// The next piece of the request body; `None` once it has all been read.
    pub async fn read_request_body(&mut self) -> Result<Option<Bytes>> {
        loop {
            match self.body.take(&mut self.buf).map_err(invalid)? {
                Step::Piece(p) => return Ok(Some(p)),
                Step::Done => {
                    self.let_go_of_buffer();
                    return Ok(None);
                }
                Step::More => {}
            }
            let stream = self.stream.as_mut().ok_or_else(no_connection)?;
            let n = framing::fill(stream, &mut self.buf, &mut self.read_size, MAX_READ_SIZE)
                .await
                .map_err(|e| Error::because(ErrorType::ReadError, "while reading the body", e))?;
            if n == 0 {
                return Err(Error::explain(
                    ErrorType::ConnectionClosed,
                    "the client closed the connection within the request body",
                ));
            }
        }
    }

    /// An empty read buffer is not kept: an open stream holds none.
    fn let_go_of_buffer(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
    }

    /// Watches the connection while the request is served, its body read. Resolves with a
    /// `ConnectionClosed` error when the client closes (or resets) it, and with a
    /// `ConnectError` one when it sends bytes after the request (the connection will not be
    /// reused); with the body not read yet, reads it (as [`Self::read_request_body`]).
    pub async fn read_body_or_idle(&mut self, no_body_expected: bool) -> Result<Option<Bytes>> {
        if !no_body_expected && !self.body.is_done() {
            return self.read_request_body().await;
        }
        let stream = self.stream.as_mut().ok_or_else(no_connection)?;
        let mut probe = [0u8; 1];
        match stream.read(&mut probe).await {
            Ok(0) | Err(_) => {
                self.keep = false;
                Err(Error::explain(
                    ErrorType::ConnectionClosed,
                    "the client closed the connection before the answer's end",
                ))
            }
            Ok(_) => {
                // The byte is the start of something sluice will not read: the connection
                // ends with this answer.
                self.keep = false;
                self.buf.extend_from_slice(&probe);
                Err(Error::explain(
                    ErrorType::ConnectError,
                    "bytes after the request",
                ))
            }
        }
    }

    /// Writes `100 Continue` (before any answer).
    pub async fn write_continue_response(&mut self) -> Result<()> {
        if self.out != Out::Nothing {
            return Ok(());
        }
        self.write(
            |w| w.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n"),
            true,
        )
        .await
    }

    /// Writes the answer's header, adding `date` and `connection`; the body follows by its
    /// `content-length`, chunked when it says `transfer-encoding: chunked`, else up to the
    /// connection's close. A second header is ignored.
    pub async fn write_response_header(&mut self, h: &Head) -> Result<()> {
        if self.out != Out::Nothing {
            log::debug!("a second response header was not sent");
            return Ok(());
        }
        if !self.body.is_done() {
            // The client may still be sending a body nobody reads.
            self.keep = false;
        }
        let status = h.status;
        let length = h.content_length();
        self.out = if self.head || status == 204 || status == 304 {
            Out::Done
        } else if let Some(n) = length {
            if n == 0 {
                Out::Done
            } else {
                Out::Length(n)
            }
        } else if h.chunked() {
            Out::Chunked
        } else {
            self.keep = false;
            Out::Close
        };
        let keep = self.keep;
        // A header without a length starts an answer made as it goes: the client sees it now.
        let flush = length.is_none();
        self.write(
            |w| {
                h.write_h1(w);
                w.extend_from_slice(b"Date: ");
                w.extend_from_slice(date::get_cached_date().as_bytes());
                w.extend_from_slice(if keep {
                    b"\r\nConnection: keep-alive\r\n\r\n"
                } else {
                    b"\r\nConnection: close\r\n\r\n"
                });
            },
            flush,
        )
        .await
    }

    /// Writes a piece of the answer's body; `end` ends the answer (and sends what is
    /// buffered). Pieces are sent at once unless the answer has a length and has not ended.
    pub async fn write_response_body(&mut self, data: Option<Bytes>, end: bool) -> Result<()> {
        let data = data.unwrap_or_default();
        let out = self.out;
        let data = match out {
            Out::Nothing => {
                return Err(Error::explain(
                    ErrorType::WriteError,
                    "a body before the response header",
                ))
            }
            Out::Done => Bytes::new(),
            Out::Length(left) => {
                let n = data.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                self.out = if n as u64 == left {
                    Out::Done
                } else {
                    Out::Length(left - n as u64)
                };
                data.slice(..n)
            }
            Out::Chunked | Out::Close => data,
        };
        if end && self.out != Out::Done {
            if matches!(self.out, Out::Length(_)) {
                // Shorter than its length: the client can only tell by the close.
                self.keep = false;
            }
            self.out = Out::Done;
        }
        let chunked = out == Out::Chunked;
        let flush = end || !matches!(out, Out::Length(_));
        if data.is_empty() && !(chunked && end) {
            return if flush {
                self.write_body(&[], false, false, true).await
            } else {
                Ok(())
            };
        }
        self.write_body(&data, chunked, chunked && end, flush).await
    }

    async fn write_body(
        &mut self,
        data: &[u8],
        chunked: bool,
        last: bool,
        flush: bool,
    ) -> Result<()> {
        let timeout = self.write_timeout;
        let stream = self.stream.as_mut().ok_or_else(no_connection)?;
        let io = async {
            if chunked && !data.is_empty() {
                let mut size = [0u8; 18];
                let n = chunk_head(&mut size, data.len());
                stream.write_all(&size[..n]).await?;
                stream.write_all(data).await?;
                stream.write_all(b"\r\n").await?;
            } else {
                stream.write_all(data).await?;
            }
            if last {
                stream.write_all(b"0\r\n\r\n").await?;
            }
            if flush {
                stream.flush().await?;
            }
            Ok(())
        };
        timed(timeout, io).await
    }

    /// Writes what `fill` puts in a buffer (a header) and, if asked, sends it.
    async fn write(&mut self, fill: impl FnOnce(&mut Vec<u8>), flush: bool) -> Result<()> {
        let mut wire = Vec::with_capacity(256);
        fill(&mut wire);
        let timeout = self.write_timeout;
        let stream = self.stream.as_mut().ok_or_else(no_connection)?;
        let io = async {
            stream.write_all(&wire).await?;
            if flush {
                stream.flush().await?;
            }
            Ok(())
        };
        timed(timeout, io).await
    }

    /// Answers with a bare `code` (no body) and closes the connection after it.
    pub async fn respond_error(&mut self, code: u16) -> Result<()> {
        self.keep = false;
        let mut h = Head::new(code, 2);
        h.insert("content-length", "0");
        h.insert("cache-control", "private, no-store");
        self.write_response_header(&h).await?;
        self.write_response_body(None, true).await
    }

    /// Ends the request: sends what is buffered and returns the connection when it can carry
    /// another request — the answer complete, the request's body read with nothing after it,
    /// and neither side asked to close.
    pub async fn finish(mut self: Box<Self>) -> Option<Stream> {
        let mut stream = self.stream.take()?;
        if stream.flush().await.is_err() {
            return None;
        }
        let reusable =
            self.keep && self.out == Out::Done && self.body.is_done() && self.buf.is_empty();
        if reusable {
            Some(stream)
        } else {
            let _ = stream.shutdown().await;
            None
        }
    }
}

/// Writes a chunk's size line (`{len:x}\r\n`) into `out`; returns its length.
fn chunk_head(out: &mut [u8; 18], len: usize) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = ((usize::BITS - len.leading_zeros()).max(1)).div_ceil(4) as usize;
    for i in 0..digits {
        out[digits - 1 - i] = HEX[(len >> (4 * i)) & 0xf];
    }
    out[digits] = b'\r';
    out[digits + 1] = b'\n';
    digits + 2
}

fn no_connection() -> Box<Error> {
    Error::explain(ErrorType::InternalError, "the request's connection is gone")
}

/// Runs a write, bounded by `timeout` when one is set.
async fn timed(
    timeout: Option<Duration>,
    io: impl std::future::Future<Output = std::io::Result<()>>,
) -> Result<()> {
    let done = match timeout {
        Some(t) => match crate::core::time::timeout(t, io).await {
            Ok(r) => r,
            Err(_) => {
                return Err(Error::explain(
                    ErrorType::WriteTimedout,
                    format!("the client read nothing for {t:?}"),
                ))
            }
        },
        None => io.await,
    };
    done.map_err(|e| Error::because(ErrorType::WriteError, "while writing the answer", e))
}

#[cfg(test)]
mod tests;
