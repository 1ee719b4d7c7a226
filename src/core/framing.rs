//! An HTTP/1.1 message body's framing (RFC 9112 §6–7): `content-length`, chunked, or up to
//! the connection's close. One reader for both sides of sluice — a client's request body and
//! a provider's answer — over a buffer its owner fills from the socket.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest chunk-size line (with extensions) or trailer section accepted.
const MAX_LINE: usize = 8 << 10;

/// Where a body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
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

/// What the buffer gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// A piece of the body (never empty).
    Piece(Bytes),
    /// More bytes are needed from the socket.
    More,
    /// The body has ended.
    Done,
}

impl Framing {
    /// A body of `length` bytes (`Done` when there are none).
    pub fn length(length: u64) -> Self {
        if length == 0 {
            Framing::Done
        } else {
            Framing::Length(length)
        }
    }

    /// Takes the next piece of the body from the front of `buf`, consuming the framing around
    /// it; the bytes after the body's end stay in `buf`.
    pub fn take(&mut self, buf: &mut BytesMut) -> Result<Step, &'static str> {
        loop {
            match *self {
                Framing::Done => return Ok(Step::Done),
                Framing::Length(left) | Framing::ChunkData(left) if !buf.is_empty() => {
                    let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let rest = left - n as u64;
                    *self = match (*self, rest) {
                        (Framing::Length(_), 0) => Framing::Done,
                        (Framing::Length(_), _) => Framing::Length(rest),
                        (_, 0) => Framing::ChunkEnd,
                        _ => Framing::ChunkData(rest),
                    };
                    return Ok(Step::Piece(buf.split_to(n).freeze()));
                }
                Framing::Close if !buf.is_empty() => return Ok(Step::Piece(buf.split().freeze())),
                Framing::ChunkSize => match chunk_size(buf)? {
                    Some(0) => *self = Framing::Trailers,
                    Some(size) => *self = Framing::ChunkData(size),
                    None => return Ok(Step::More),
                },
                Framing::ChunkEnd if buf.len() >= 2 => {
                    if &buf[..2] != b"\r\n" {
                        return Err("a chunk does not end with CRLF");
                    }
                    buf.advance(2);
                    *self = Framing::ChunkSize;
                }
                Framing::Trailers => match trailers_end(buf)? {
                    Some(end) => {
                        buf.advance(end);
                        *self = Framing::Done;
                    }
                    None => return Ok(Step::More),
                },
                _ => return Ok(Step::More),
            }
        }
    }

    /// The socket has ended: a body delimited by the close is complete (`true`); any other
    /// is cut short (`false`).
    pub fn at_close(&mut self) -> bool {
        match self {
            Framing::Close | Framing::Done => {
                *self = Framing::Done;
                true
            }
            _ => false,
        }
    }

    pub fn is_done(&self) -> bool {
        *self == Framing::Done
    }
}

/// Parses a chunk-size line at the start of `buf` (and consumes it).
fn chunk_size(buf: &mut BytesMut) -> Result<Option<u64>, &'static str> {
    match httparse::parse_chunk_size(buf) {
        Ok(httparse::Status::Complete((len, size))) => {
            buf.advance(len);
            Ok(Some(size))
        }
        Ok(httparse::Status::Partial) if buf.len() > MAX_LINE => Err("chunk-size line too long"),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(_) => Err("invalid chunk size"),
    }
}

/// The length of the trailer section at the start of `buf`, up to and including the empty
/// line that ends it; `None` while it is incomplete.
fn trailers_end(buf: &[u8]) -> Result<Option<usize>, &'static str> {
    let mut at = 0;
    while let Some(eol) = buf[at..].windows(2).position(|w| w == b"\r\n") {
        if eol == 0 {
            return Ok(Some(at + 2));
        }
        at += eol + 2;
    }
    if buf.len() > MAX_LINE {
        return Err("trailer section too long");
    }
    Ok(None)
}

/// What a message's header fields say about its body's framing and its connection.
#[derive(Debug, Default, Clone, Copy)]
pub struct Fields {
    /// `content-length` (a list of equal values, or repeated equal values, counts as one).
    pub length: Option<u64>,
    /// A `transfer-encoding` was given.
    pub coded: bool,
    /// ... and its last coding is `chunked`.
    pub chunked: bool,
    /// `connection` lists `close`.
    pub close: bool,
    /// `connection` lists `keep-alive`.
    pub keep_alive: bool,
}

impl Fields {
    /// Notes one field (its name as written, any case); an invalid or conflicting
    /// `content-length` is an error.
    pub fn note(&mut self, name: &[u8], value: &[u8]) -> Result<(), &'static str> {
        if name.eq_ignore_ascii_case(b"content-length") {
            for v in value.split(|b| *b == b',') {
                let n = content_length(v).ok_or("invalid content-length")?;
                if self.length.is_some_and(|l| l != n) {
                    return Err("conflicting content-length values");
                }
                self.length = Some(n);
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.chunked = ends_chunked(value);
            self.coded = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            self.close |= has_token(value, b"close");
            self.keep_alive |= has_token(value, b"keep-alive");
        }
        Ok(())
    }

    /// Whether the connection may carry another message after this one: HTTP/1.1 unless
    /// `connection: close`; HTTP/1.0 only with `connection: keep-alive`.
    pub fn keeps(&self, http10: bool) -> bool {
        !self.close && (!http10 || self.keep_alive)
    }
}

/// Whether the header in `buf` can have ended: an empty line (`\n\n` or `\n\r`) since the
/// search last stopped at `*scanned`, which moves to the end of `buf`. A header trickled in
/// byte by byte is then parsed once it can be complete, not after every read.
pub fn header_may_end(buf: &[u8], scanned: &mut usize) -> bool {
    // Two bytes back: the blank line may straddle the previous read's end.
    let from = scanned.saturating_sub(2).min(buf.len());
    *scanned = buf.len();
    buf[from..].windows(2).any(|w| w == b"\n\n" || w == b"\n\r")
}

/// Reads once from `r` into `buf`, asking for at least `*size` bytes of room; a read that
/// fills its room doubles the next one's, up to `max`. Returns the bytes read (0 at the end).
pub async fn fill<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    size: &mut usize,
    max: usize,
) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < *size {
        buf.reserve(*size);
    }
    let room = buf.capacity() - buf.len();
    let n = r.read_buf(buf).await?;
    if n == room {
        *size = (*size * 2).min(max);
    }
    Ok(n)
}

/// Whether a comma-separated header value lists `token` (case-insensitive).
pub fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// A `content-length` value: digits only (surrounding spaces allowed).
pub fn content_length(value: &[u8]) -> Option<u64> {
    let v = value.trim_ascii();
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Whether a `transfer-encoding` value's last coding is `chunked`.
pub fn ends_chunked(value: &[u8]) -> bool {
    let last = value.rsplit(|b| *b == b',').next().unwrap_or_default();
    last.trim_ascii().eq_ignore_ascii_case(b"chunked")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` one byte at a time; returns the body and what is left after it.
    fn bytewise(mut f: Framing, wire: &[u8]) -> Result<(Vec<u8>, Vec<u8>), &'static str> {
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut at = 0;
        loop {
            match f.take(&mut buf)? {
                Step::Piece(p) => {
                    assert!(!p.is_empty());
                    body.extend_from_slice(&p);
                }
                Step::Done => return Ok((body, buf.to_vec())),
                Step::More if at < wire.len() => {
                    buf.extend_from_slice(&wire[at..at + 1]);
                    at += 1;
                }
                Step::More => return Err("ended early"),
            }
        }
    }

    #[test]
    fn chunked_bodies_end_at_their_last_chunk_and_leave_what_follows() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        let (body, rest) = bytewise(Framing::ChunkSize, wire).unwrap();
        assert_eq!(body, b"hello world");
        assert_eq!(rest, b"");
        // Fed whole, the bytes after the body stay in the buffer.
        let mut f = Framing::ChunkSize;
        let mut buf = BytesMut::from(&wire[..]);
        let mut body = Vec::new();
        while let Step::Piece(p) = f.take(&mut buf).unwrap() {
            body.extend_from_slice(&p);
        }
        assert_eq!(body, b"hello world");
        assert_eq!(&buf[..], b"NEXT");
    }

    #[test]
    fn lengths_and_malformed_chunks() {
        let (body, _) = bytewise(Framing::length(3), b"abc").unwrap();
        assert_eq!(body, b"abc");
        assert!(Framing::length(0).is_done());
        assert!(bytewise(Framing::ChunkSize, b"zz\r\n").is_err());
        assert!(bytewise(Framing::ChunkSize, b"1\r\naXY").is_err());
        let mut f = Framing::Length(4);
        assert!(!f.at_close());
        let mut f = Framing::Close;
        assert!(f.at_close() && f.is_done());
        assert_eq!(content_length(b" 12 "), Some(12));
        assert_eq!(content_length(b"+12"), None);
        assert_eq!(content_length(b""), None);
        assert!(ends_chunked(b"gzip, Chunked"));
        assert!(!ends_chunked(b"chunked, gzip"));
        assert!(has_token(b"keep-alive, Close", b"close"));
    }

    #[test]
    fn fields_tell_the_framing_and_the_connection() {
        let mut f = Fields::default();
        f.note(b"content-length", b"5, 5").unwrap();
        f.note(b"content-length", b"5").unwrap();
        assert_eq!(f.length, Some(5));
        assert!(f.note(b"content-length", b"6").is_err());
        assert!(f.note(b"content-length", b"x").is_err());
        f.note(b"transfer-encoding", b"gzip, chunked").unwrap();
        f.note(b"Connection", b"Keep-Alive").unwrap();
        assert!(f.coded && f.chunked && f.keep_alive && !f.close);
        assert!(f.keeps(true) && f.keeps(false));
        assert!(Fields::default().keeps(false) && !Fields::default().keeps(true));
        f.note(b"connection", b"close").unwrap();
        assert!(!f.keeps(false) && !f.keeps(true));
    }

    #[test]
    fn a_header_end_is_found_across_reads() {
        let wire = b"GET / HTTP/1.1\r\nhost: a\r\n\r\n";
        // Read in pieces of every size: the end is never missed, nor suspected before its
        // blank line has begun (`\n\r` is enough to try a parse).
        for piece in 1..wire.len() {
            let mut scanned = 0;
            let mut found = None;
            for end in (piece..wire.len() + piece).step_by(piece) {
                let end = end.min(wire.len());
                if header_may_end(&wire[..end], &mut scanned) {
                    found = Some(end);
                    break;
                }
            }
            let found = found.unwrap_or_else(|| panic!("missed in pieces of {piece}"));
            assert!(found >= wire.len() - 1, "pieces of {piece}: at {found}");
        }
        let mut scanned = 0;
        assert!(header_may_end(b"HTTP/1.0 200 OK\n\n", &mut scanned));
        assert_eq!(scanned, 17);
    }
}
