//! Requests to providers, built from scratch: nothing of the client's request but the body
//! goes upstream. Headers come from the provider's descriptor (credential, extra headers,
//! stream framing) and its config (host, custom headers).

use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession;

use crate::config::Provider;
use crate::core::ApiError;
use crate::providers::Wire;

/// Builds a request to `provider` from scratch: nothing of the client's request but the body
/// goes upstream. `body_len` is `None` for requests without a body.
pub fn request_header(
    provider: &Provider,
    method: &str,
    path: &str,
    body_len: Option<usize>,
    stream: bool,
    request_id: &str,
) -> Result<RequestHeader, ApiError> {
    let build = || -> pingora::Result<RequestHeader> {
        let mut req = RequestHeader::build(method, path.as_bytes(), Some(8))?;
        req.insert_header("host", provider.base.authority.as_str())?;
        if let Some(len) = body_len {
            req.insert_header("content-type", "application/json")?;
            req.insert_header("content-length", len)?;
        }
        let wire = Wire::of(provider.kind).descriptor();
        req.insert_header(
            "accept",
            if stream {
                wire.stream_content_type
            } else {
                "application/json"
            },
        )?;
        req.insert_header("user-agent", concat!("sluice/", env!("CARGO_PKG_VERSION")))?;
        req.insert_header("x-request-id", request_id)?;
        if let Some(key) = &provider.api_key {
            let (name, value) = wire.credential.header(key.expose());
            let mut v = http::HeaderValue::from_str(&value)
                .map_err(|_| pingora::Error::new_str("api key is not a valid header value"))?;
            v.set_sensitive(true);
            req.insert_header(name, v)?;
        }
        for (name, value) in wire.headers {
            req.insert_header(*name, *value)?;
        }
        for (name, value) in &provider.headers {
            req.insert_header(name.clone(), value.clone())?;
        }
        Ok(req)
    };
    build().map_err(|_| {
        ApiError::internal(format!(
            "Could not build the request for provider '{}'.",
            provider.name
        ))
    })
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
