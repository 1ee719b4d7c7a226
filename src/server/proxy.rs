//! The client-facing service: what happens to a request once its header has been read.
//!
//! Connections reach it through [`crate::server::conns::ClientConns`] (connection cap, header
//! deadline, idle keep-alive), which reads each HTTP/1.1 request with sluice's own session
//! ([`crate::downstream::h1`]) and runs [`RequestCtx::serve`] and [`RequestCtx::log`]; HTTP/2
//! streams go through Pingora's proxy, whose phases ([`ClientProxy`]) call the same two.
//!
//! ```text
//!  client ─► serve   request id, write timeout, then pipeline::handle — route,
//!                    authenticate, admit, decode, input guardrails, dispatch (pooled
//!                    upstream exchange, answer relayed/translated to the client), settle
//!                    ─► always answers, so Pingora's own upstream phases never run (see
//!                    `pipeline::dispatch` for why)
//!            log     one access-log line, the usage record, the trace's spans
//! ```

use async_trait::async_trait;
use bytes::Bytes;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use std::sync::Arc;

use crate::core::ApiError;
use crate::ctx::Ctx;
use crate::downstream;
use crate::pipeline::gateway::{Gateway, Live};
use crate::pipeline::{self, respond};
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

impl RequestCtx {
    /// A request served by the generation current now.
    pub fn new(live: &Live) -> Self {
        RequestCtx {
            gw: live.current(),
            ctx: Ctx::new(),
        }
    }

    /// Answers the request whose header `session` has read, always (errors included).
    pub async fn serve(&mut self, session: &mut downstream::Session<'_>) {
        let RequestCtx { gw, ctx } = self;
        ctx.request_id = pipeline::request_id(session);
        if let Some(t) = &gw.tracer {
            // Several values of a field are ambiguous: none is taken.
            let single = |name: &'static str| {
                let mut values = session.header_values(name);
                let first = values.next().and_then(downstream::text);
                first.filter(|_| values.next().is_none())
            };
            let (parent, state) = (single("traceparent"), single("tracestate"));
            ctx.trace = Some(t.start(parent, state, session.method().as_str(), ctx));
        }
        let _in_flight = gw.in_flight.enter();
        // A client that stops reading does not hold a stream (and its upstream) forever.
        session.set_write_timeout(Some(gw.cfg.timeouts.idle));
        if let Err(e) = pipeline::handle(gw, session, ctx).await {
            respond::error(session, ctx, &e).await;
        }
    }

    /// Records the served request: metrics, usage ledger, trace, access log.
    pub fn log(&mut self, session: &downstream::Session<'_>, e: Option<&Error>) {
        let RequestCtx { gw, ctx } = self;
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

#[async_trait]
impl ProxyHttp for ClientProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(&self.live)
    }

    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {
        // None: sluice compresses nothing (Pingora's default adds a disabled compression
        // module that would still run on every request).
    }

    async fn request_filter(&self, session: &mut Session, rc: &mut RequestCtx) -> Result<bool> {
        rc.serve(&mut downstream::Session::H2(session)).await;
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
                ctx.request_id = pipeline::request_id(&downstream::Session::H2(session));
            }
            let mut h = respond::header(code, "application/json", ctx);
            let body: Bytes = err.body();
            h.insert("content-length", body.len());
            if let Ok(h) = h.to_pingora() {
                let _ = session.write_response_header(Box::new(h), false).await;
            }
            let _ = session.write_response_body(Some(body), true).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, rc: &mut RequestCtx) {
        rc.log(&downstream::Session::H2(session), e);
    }
}
