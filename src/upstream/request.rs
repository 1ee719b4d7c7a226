//! Requests to providers, built from scratch: nothing of the client's request but the body
//! goes upstream. Headers come from the provider's descriptor (credential, extra headers,
//! stream framing) and its config (host, custom headers).
//!
//! An [`Outgoing`] request is a short list of validated header fields: written straight to
//! the wire for an HTTP/1.1 provider, turned into Pingora's header for HTTP/2 (and health
//! checks).

use std::borrow::Cow;

use bytes::Bytes;
use http::uri::PathAndQuery;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession;

use crate::config::Provider;
use crate::core::fields::is_value;
use crate::core::framing::has_token;
use crate::core::ApiError;
use crate::providers::Wire;

/// A request to a provider: method, path and header fields in the order they go out.
pub struct Outgoing<'a> {
    method: &'static str,
    path: PathAndQuery,
    fields: Vec<Field<'a>>,
}

/// One header field: the value is `prefix` followed by `value`.
struct Field<'a> {
    /// Lowercase.
    name: &'a str,
    prefix: &'static str,
    value: Cow<'a, [u8]>,
    /// Never indexed by HTTP/2 header compression (a credential).
    sensitive: bool,
}

/// A header field's value, borrowed or owned.
pub trait FieldValue<'a> {
    fn bytes(self) -> Cow<'a, [u8]>;
}

impl<'a> FieldValue<'a> for &'a str {
    fn bytes(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }
}

impl<'a> FieldValue<'a> for &'a [u8] {
    fn bytes(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self)
    }
}

impl<'a> FieldValue<'a> for Vec<u8> {
    fn bytes(self) -> Cow<'a, [u8]> {
        Cow::Owned(self)
    }
}

impl<'a> FieldValue<'a> for String {
    fn bytes(self) -> Cow<'a, [u8]> {
        Cow::Owned(self.into_bytes())
    }
}

/// The header fields `Outgoing` starts with at most (and room for trace context).
const FIELDS: usize = 12;

impl<'a> Outgoing<'a> {
    /// A request to `provider`. `body_len` is `None` for requests without a body.
    pub fn new(
        provider: &'a Provider,
        method: &'static str,
        path: String,
        body_len: Option<usize>,
        stream: bool,
        request_id: &'a str,
    ) -> Result<Self, ApiError> {
        let invalid = || unbuildable(provider);
        let path = PathAndQuery::from_maybe_shared(Bytes::from(path)).map_err(|_| invalid())?;
        if !path.as_str().starts_with('/') {
            return Err(invalid());
        }
        let mut req = Outgoing {
            method,
            path,
            fields: Vec::with_capacity(FIELDS),
        };
        let wire = Wire::of(provider.kind).descriptor();
        let mut ok = req.insert("host", provider.base.authority.as_str());
        if let Some(len) = body_len {
            ok &= req.insert("content-type", "application/json");
            let len = itoa::Buffer::new().format(len).as_bytes().to_vec();
            ok &= req.insert("content-length", len);
        }
        let accept = if stream {
            wire.stream_content_type
        } else {
            "application/json"
        };
        ok &= req.insert("accept", accept);
        ok &= req.insert("user-agent", concat!("sluice/", env!("CARGO_PKG_VERSION")));
        ok &= req.insert("x-request-id", request_id);
        if let Some(key) = &provider.api_key {
            let (name, prefix) = wire.credential.header();
            ok &= req.put(Field {
                name,
                prefix,
                value: Cow::Borrowed(key.expose().as_bytes()),
                sensitive: true,
            });
        }
        for (name, value) in wire.headers {
            ok &= req.insert(name, *value);
        }
        for (name, value) in &provider.headers {
            ok &= req.insert(name.as_str(), value.as_bytes());
        }
        if ok {
            Ok(req)
        } else {
            Err(invalid())
        }
    }

    /// Sets the field `name` (lowercase): a field of that name already there takes the
    /// value in its place. `false` (and nothing set) if the value cannot be a header value.
    pub fn insert(&mut self, name: &'a str, value: impl FieldValue<'a>) -> bool {
        self.put(Field {
            name,
            prefix: "",
            value: value.bytes(),
            sensitive: false,
        })
    }

    fn put(&mut self, field: Field<'a>) -> bool {
        if !is_value(field.prefix.as_bytes()) || !is_value(&field.value) {
            return false;
        }
        match self.fields.iter_mut().find(|f| f.name == field.name) {
            Some(f) => *f = field,
            None => self.fields.push(field),
        }
        true
    }

    /// Whether a field asks the provider to close the connection after its answer.
    pub fn closes(&self) -> bool {
        self.fields
            .iter()
            .any(|f| f.name == "connection" && has_token(&f.value, b"close"))
    }

    /// The HTTP/1.1 request header, with `body` right behind it.
    pub fn to_h1(&self, body: &[u8]) -> Vec<u8> {
        let len: usize = self
            .fields
            .iter()
            .map(|f| f.name.len() + f.prefix.len() + f.value.len() + 4)
            .sum();
        let mut out = Vec::with_capacity(self.path.as_str().len() + len + 32 + body.len());
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.path.as_str().as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        for f in &self.fields {
            out.extend_from_slice(f.name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(f.prefix.as_bytes());
            out.extend_from_slice(&f.value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        out
    }

    /// The request as Pingora's header (HTTP/2 sessions, health checks).
    pub fn header(&self) -> pingora::Result<RequestHeader> {
        let path = self.path.as_str().as_bytes();
        let mut req = RequestHeader::build(self.method, path, Some(self.fields.len()))?;
        for f in &self.fields {
            let mut value = Vec::with_capacity(f.prefix.len() + f.value.len());
            value.extend_from_slice(f.prefix.as_bytes());
            value.extend_from_slice(&f.value);
            let mut v = http::HeaderValue::from_bytes(&value).map_err(|_| {
                pingora::Error::new_str("a header value that was valid is no longer")
            })?;
            v.set_sensitive(f.sensitive);
            req.insert_header(f.name.to_string(), v)?;
        }
        Ok(req)
    }
}

/// Builds a request to `provider` from scratch as Pingora's header (health checks).
pub fn request_header(
    provider: &Provider,
    method: &'static str,
    path: &str,
    body_len: Option<usize>,
    stream: bool,
    request_id: &str,
) -> Result<RequestHeader, ApiError> {
    let req = Outgoing::new(
        provider,
        method,
        path.to_string(),
        body_len,
        stream,
        request_id,
    )?;
    req.header().map_err(|_| unbuildable(provider))
}

/// A request to `provider` that cannot be written: its configured values are not valid in
/// a header (never quoted: one of them may be its key).
fn unbuildable(provider: &Provider) -> ApiError {
    ApiError::internal(format!(
        "Could not build the request for provider '{}'.",
        provider.name
    ))
}

/// Reads response headers, skipping informational (1xx) ones.
pub async fn read_final_header(up: &mut HttpSession) -> pingora::Result<()> {
    for _ in 0..4 {
        up.read_response_header().await?;
        if up
            .response_header()
            .is_some_and(|h| !h.status.is_informational())
        {
            return Ok(());
        }
    }
    pingora::Error::e_explain(
        pingora::ErrorType::InvalidHTTPHeader,
        "too many informational responses",
    )
}

#[cfg(test)]
mod tests;
