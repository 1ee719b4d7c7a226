//! The client's side of a request: its header, its body and the answer written back.
//!
//! HTTP/1.1 requests are read and answered by sluice's own session ([`h1`]); HTTP/2 streams
//! by Pingora's. [`Session`] is either, and is what the request pipeline works with.

pub mod h1;
mod head;

pub use head::{Head, Value};

use std::time::Duration;

pub use crate::core::fields::text;
use crate::core::fields::HeaderFields;
use bytes::Bytes;
use pingora::protocols::l4::socket::SocketAddr;
use pingora::Result;

/// A request's client session.
pub enum Session<'a> {
    H1(&'a mut h1::Session),
    /// An HTTP/2 stream, served through Pingora's proxy.
    H2(&'a mut pingora::proxy::Session),
}

impl Session<'_> {
    pub fn method(&self) -> &http::Method {
        match self {
            Session::H1(s) => s.method(),
            Session::H2(s) => &s.req_header().method,
        }
    }

    pub fn uri(&self) -> &http::Uri {
        match self {
            Session::H1(s) => s.uri(),
            Session::H2(s) => &s.req_header().uri,
        }
    }

    /// The first value of the request's header field `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        match self {
            Session::H1(s) => s.fields().get(name),
            Session::H2(s) => s.req_header().headers.get(name).map(|v| v.as_bytes()),
        }
    }

    /// Every value of the request's header field `name` (lowercase), in order.
    pub fn header_values<'s>(&'s self, name: &'s str) -> HeaderValues<'s> {
        match self {
            Session::H1(s) => HeaderValues::H1(s.fields(), name, 0),
            Session::H2(s) => HeaderValues::H2(s.req_header().headers.get_all(name).iter()),
        }
    }

    pub fn is_http2(&self) -> bool {
        matches!(self, Session::H2(_))
    }

    /// The connection is not reused after this answer (an HTTP/2 stream ends on its own).
    pub fn close_after(&mut self) {
        match self {
            Session::H1(s) => s.close_after(),
            Session::H2(s) => s.set_keepalive(None),
        }
    }

    /// Bounds each write of the answer: a client that stops reading does not hold it.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        match self {
            Session::H1(s) => s.set_write_timeout(timeout),
            Session::H2(s) => s.as_downstream_mut().set_write_timeout(timeout),
        }
    }

    pub fn client_addr(&self) -> Option<&SocketAddr> {
        match self {
            Session::H1(s) => s.client_addr(),
            Session::H2(s) => s.client_addr(),
        }
    }

    pub async fn read_request_body(&mut self) -> Result<Option<Bytes>> {
        match self {
            Session::H1(s) => s.read_request_body().await,
            Session::H2(s) => s.read_request_body().await,
        }
    }

    /// See [`h1::Session::read_body_or_idle`].
    pub async fn read_body_or_idle(&mut self, no_body_expected: bool) -> Result<Option<Bytes>> {
        match self {
            Session::H1(s) => s.read_body_or_idle(no_body_expected).await,
            Session::H2(s) => {
                s.downstream_session
                    .read_body_or_idle(no_body_expected)
                    .await
            }
        }
    }

    pub async fn write_continue_response(&mut self) -> Result<()> {
        match self {
            Session::H1(s) => s.write_continue_response().await,
            Session::H2(s) => s.as_downstream_mut().write_continue_response().await,
        }
    }

    /// Writes the answer's header; `end` when it has no body.
    pub async fn write_response_header(&mut self, h: &Head, end: bool) -> Result<()> {
        match self {
            Session::H1(s) => {
                s.write_response_header(h).await?;
                if end {
                    s.write_response_body(None, true).await?;
                }
                Ok(())
            }
            Session::H2(s) => {
                s.write_response_header(Box::new(h.to_pingora()?), end)
                    .await
            }
        }
    }

    pub async fn write_response_body(&mut self, data: Option<Bytes>, end: bool) -> Result<()> {
        match self {
            Session::H1(s) => s.write_response_body(data, end).await,
            Session::H2(s) => s.write_response_body(data, end).await,
        }
    }
}

/// The values of one request header field; see [`Session::header_values`].
pub enum HeaderValues<'a> {
    /// The fields, the name, where to look from.
    H1(&'a HeaderFields, &'a str, usize),
    H2(http::header::ValueIter<'a, http::HeaderValue>),
}

impl<'a> Iterator for HeaderValues<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match self {
            HeaderValues::H1(fields, name, from) => {
                let (i, value) = fields.find(name, *from)?;
                *from = i + 1;
                Some(value)
            }
            HeaderValues::H2(values) => values.next().map(|v| v.as_bytes()),
        }
    }
}
