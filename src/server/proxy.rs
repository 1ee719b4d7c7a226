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
//!            logging                one access-log line
//! ```

use async_trait::async_trait;
use bytes::Bytes;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use crate::core::ApiError;
use crate::ctx::Ctx;
use crate::pipeline::gateway::Gateway;
use crate::pipeline::{self, respond};
use crate::server::conns;
use crate::telemetry;

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::new()
    }

    fn on_connection_reuse(
        &self,
        _session: &mut Session,
        _ctx: &mut Ctx,
        prev: Box<dyn std::any::Any + Send + Sync>,
    ) {
        conns::header_complete(prev);
    }

    async fn early_request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        ctx.request_id = pipeline::request_id(session);
        conns::keep_alive_for(session, self.cfg.timeouts.client_idle);
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let _in_flight = self.in_flight.enter();
        // A client that stops reading does not hold a stream (and its upstream) forever.
        session
            .as_downstream_mut()
            .set_write_timeout(Some(self.cfg.timeouts.idle));
        if let Err(e) = pipeline::handle(self, session, ctx).await {
            respond::error(session, ctx, &e).await;
        }
        Ok(true)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        // request_filter answers every request; reaching this is a bug.
        Error::e_explain(InternalError, "no upstream phase in sluice")
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
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

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        telemetry::record(&self.metrics, ctx);
        if let Some(ledger) = &self.ledger {
            let status = telemetry::status(ctx);
            ledger.record(crate::ledger::UsageRecord::from_ctx(ctx, status, &self.cfg));
        }
        if self.cfg.access_log {
            telemetry::access_log(session, e, ctx);
        }
    }
}
