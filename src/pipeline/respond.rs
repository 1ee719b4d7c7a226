//! Writing complete responses to the client: JSON answers and OpenAI-shaped errors.

use bytes::Bytes;

use crate::core::ApiError;
use crate::ctx::Ctx;
use crate::downstream::{Head, Session};

/// Headers a response may get besides `ctx.extra_headers`: content type, request id, then
/// content length or the event stream's two, retry-after or www-authenticate, and
/// the session's date, connection and transfer-encoding.
const BASE_HEADERS: usize = 9;

/// Starts a response: status, content type, request id.
///
/// Sized for every header it will get, so its list is never grown (a stream's header is
/// held for the stream's whole life). An extra header whose value no header may carry is
/// left out.
pub fn header(status: u16, content_type: &'static str, ctx: &Ctx) -> Head {
    let room = BASE_HEADERS + ctx.extra_headers.len();
    let mut h = Head::new(status, room);
    h.insert("content-type", content_type);
    h.insert("x-request-id", ctx.request_id.clone());
    for (name, value) in &ctx.extra_headers {
        h.append(name, value.clone());
    }
    h
}

/// Sends a whole JSON body. Records a failed write as a client that went away.
pub async fn json(session: &mut Session<'_>, ctx: &mut Ctx, status: u16, body: Bytes, mut h: Head) {
    h.insert("content-length", body.len());
    ctx.status = status;
    let sent = match session.write_response_header(&h, false).await {
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
        h.insert("retry-after", ra.clone());
    }
    if err.status == 401 {
        h.insert("www-authenticate", "Bearer");
    }
    let body = ctx.front.error_body(err);
    json(session, ctx, err.status, body, h).await;
}
