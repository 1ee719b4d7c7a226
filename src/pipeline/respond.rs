//! Writing complete responses to the client: JSON answers and OpenAI-shaped errors.

use bytes::Bytes;
use pingora::http::ResponseHeader;

use crate::core::ApiError;
use crate::ctx::Ctx;
use crate::downstream::Session;

/// Headers a response may get besides `ctx.extra_headers`: content type, request id, then
/// content length or the event stream's two, retry-after or www-authenticate, and
/// the session's date, connection and transfer-encoding.
const BASE_HEADERS: usize = 9;

/// Starts a response: status, content type, request id.
///
/// Sized for every header it will get, so the map is never grown, and without a map of
/// header names' case: sluice's names are lowercase, as written on the wire (a stream's
/// header is held for the stream's whole life).
pub fn header(status: u16, content_type: &str, ctx: &Ctx) -> ResponseHeader {
    let room = BASE_HEADERS + ctx.extra_headers.len();
    let mut h = ResponseHeader::build_no_case(status, Some(room)).expect("valid status");
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
    session: &mut Session<'_>,
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
pub async fn error(session: &mut Session<'_>, ctx: &mut Ctx, err: &ApiError) {
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
