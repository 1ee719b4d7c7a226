//! Writing complete responses to the client: JSON answers and OpenAI-shaped errors.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::core::ApiError;
use crate::ctx::Ctx;

/// Starts a response: status, content type, request id.
pub fn header(status: u16, content_type: &str, ctx: &Ctx) -> ResponseHeader {
    let mut h = ResponseHeader::build(status, Some(6)).expect("valid status");
    h.insert_header("content-type", content_type)
        .expect("static header");
    h.insert_header("x-request-id", &ctx.request_id)
        .expect("request ids are validated header values");
    for (name, value) in &ctx.extra_headers {
        if let Ok(v) = http::HeaderValue::from_str(value) {
            h.append_header(*name, v).expect("static header name");
        }
    }
    h
}

/// Sends a whole JSON body. Records a failed write as a client that went away.
pub async fn json(
    session: &mut Session,
    ctx: &mut Ctx,
    status: u16,
    body: Bytes,
    mut h: ResponseHeader,
) {
    h.insert_header("content-length", body.len())
        .expect("numeric header");
    ctx.status = status;
    let sent = match session.write_response_header(Box::new(h), false).await {
        Ok(()) => session.write_response_body(Some(body), true).await,
        Err(e) => Err(e),
    };
    if sent.is_err() {
        ctx.client_gone = true;
    }
}

/// Sends `err` in the OpenAI error shape.
pub async fn error(session: &mut Session, ctx: &mut Ctx, err: &ApiError) {
    ctx.error = Some(err.origin.as_str());
    let mut h = header(err.status, "application/json", ctx);
    if let Some(ra) = &err.retry_after {
        if let Ok(v) = http::HeaderValue::from_str(ra) {
            h.insert_header("retry-after", v)
                .expect("valid header value");
        }
    }
    if err.status == 401 {
        h.insert_header("www-authenticate", "Bearer")
            .expect("static header");
    }
    let body = ctx.front.error_body(err);
    json(session, ctx, err.status, body, h).await;
}
