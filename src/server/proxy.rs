//! The client-facing service: sluice's `ProxyHttp` implementation.
//!
//! Connections reach it through [`crate::server::conns::ClientConns`] (connection cap, header
//! deadline, idle keep-alive).
//!
//! ```text
//!  client ─► early_request_filter   request id, keep-alive bound
//!            request_filter         pipeline::handle — route, authenticate, admit, decode,
//!                                   input guardrails, dispatch (pooled upstream exchange,
//!                                   answer relayed/translated to the client), settle
//!                                   ─► always answers here, so Pingora's own upstream phases
//!                                   never run (see `pipeline::dispatch` for why)
//!            logging                one access-log line, the usage record, the trace's spans
//! ```

use async_trait::async_trait;
use bytes::Bytes;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use std::sync::Arc;

use crate::core::ApiError;
use crate::ctx::Ctx;
use crate::pipeline::gateway::{Gateway, Live};
use crate::pipeline::{self, respond};
use crate::server::conns;
use crate::telemetry;

/// The client-facing service: each request is served by the generation that was current
/// when it arrived ([`Live`]), to its end.
pub struct ClientProxy {
    pub live: Arc<Live>,
}

/// A request's state and the generation serving it.
pub struct RequestCtx {
    gw: Arc<Gateway>,
    ctx: Ctx,
}

#[async_trait]
impl ProxyHttp for ClientProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            gw: self.live.current(),
            ctx: Ctx::new(),
        }
    }

    fn on_connection_reuse(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
        prev: Box<dyn std::any::Any + Send + Sync>,
    ) {
        conns::header_complete(prev);
    }

    async fn early_request_filter(&self, session: &mut Session, rc: &mut RequestCtx) -> Result<()> {
        rc.ctx.request_id = pipeline::request_id(session);
        if let Some(t) = &rc.gw.tracer {
            rc.ctx.trace = Some(t.start(session.req_header(), &rc.ctx));
        }
        conns::keep_alive_for(session, rc.gw.cfg.timeouts.client_idle);
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, rc: &mut RequestCtx) -> Result<bool> {
        let RequestCtx { gw, ctx } = rc;
        let _in_flight = gw.in_flight.enter();
        // A client that stops reading does not hold a stream (and its upstream) forever.
        session
            .as_downstream_mut()
            .set_write_timeout(Some(gw.cfg.timeouts.idle));
        if let Err(e) = pipeline::handle(gw, session, ctx).await {
            respond::error(session, ctx, &e).await;
        }
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        // request_filter answers every request; reaching this is a bug.
        Error::e_explain(InternalError, "no upstream phase in sluice")
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        rc: &mut RequestCtx,
    ) -> FailToProxy {
        let ctx = &mut rc.ctx;
        // Only reached for errors Pingora detects itself, e.g. a malformed request.
        let code = match e.etype() {
            HTTPStatus(code) => *code,
            _ => match e.esource() {
                ErrorSource::Downstream => match e.etype() {
                    WriteError | ReadError | ConnectionClosed => 0,
                    _ => 400,
                },
                _ => 500,
            },
        };
        if code > 0 {
            let err = if code < 500 {
                let mut err = ApiError::invalid_request("The request could not be parsed.");
                err.status = code;
                err
            } else {
                ApiError::internal("The gateway failed to handle the request.")
            };
            if ctx.request_id.is_empty() {
                ctx.request_id = pipeline::request_id(session);
            }
            let h = respond::header(code, "application/json", ctx);
            let mut h = h;
            let body: Bytes = err.body();
            let _ = h.insert_header("content-length", body.len());
            let _ = session.write_response_header(Box::new(h), false).await;
            let _ = session.write_response_body(Some(body), true).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, rc: &mut RequestCtx) {
        let RequestCtx { gw, ctx } = rc;
        telemetry::record(&gw.metrics, ctx);
        let status = telemetry::status(ctx);
        if let Some(ledger) = &gw.ledger {
            ledger.record(crate::ledger::UsageRecord::from_ctx(ctx, status, &gw.cfg));
        }
        if let Some(tracer) = &gw.tracer {
            tracer.record(ctx, status);
        }
        if gw.cfg.access_log {
            telemetry::access_log(session, e, ctx);
        }
    }
}
