//! Client connections: how many may be open at once, how long a request header may take, and
//! how much memory an idle one holds.
//!
//! [`ClientConns`] is the listener's application. It wraps Pingora's HTTP proxy and runs the
//! HTTP/1.1 keep-alive loop itself — the same loop as Pingora's own `ServerApp` for HTTP
//! apps (pingora-core 0.9 `apps/mod.rs`) — so that it can bound what Pingora leaves open:
//!
//! * **A cap on connections** (`server.max_connections`): over it, a new connection is closed
//!   as soon as it is accepted (counted in `sluice_client_connections_refused_total`).
//! * **A total deadline per request header** (`timeouts.request_header`). Pingora's header
//!   timeout applies to each `read()` on its own, so a client sending one byte every few
//!   seconds would hold a connection forever. On a kept-alive connection the deadline counts
//!   from the end of the previous answer and adds `timeouts.client_idle`. The proxy tells the
//!   loop that a header is complete through the connection's user context, which Pingora hands
//!   to [`ProxyHttp::on_connection_reuse`](pingora::proxy::ProxyHttp::on_connection_reuse)
//!   right after parsing it ([`header_complete`]).
//! * **Idle keep-alive**: Pingora waits for the next request forever once a client asked for
//!   keep-alive; [`keep_alive_for`] bounds each wait by `timeouts.client_idle`.
//!
//! HTTP/2 connections go to Pingora's own handling (its idle timeout is set from
//! `timeouts.client_idle`), under the same connection cap.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::proxy::{HttpProxy, Session};
use pingora::server::ShutdownWatch;
use tokio::sync::{Notify, Semaphore};

use crate::gateway::Gateway;
use crate::telemetry::Metrics;

/// The client listener's application: the proxy, behind the connection cap and deadlines.
pub struct ClientConns {
    proxy: Arc<HttpProxy<Gateway>>,
    slots: Arc<Semaphore>,
    /// A request header's deadline on a new connection.
    first_header: Duration,
    /// The same on a kept-alive connection: idle time plus header time.
    next_header: Duration,
    metrics: Arc<Metrics>,
}

impl ClientConns {
    pub fn new(
        proxy: HttpProxy<Gateway>,
        max_connections: usize,
        request_header: Duration,
        client_idle: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        ClientConns {
            proxy: Arc::new(proxy),
            slots: Arc::new(Semaphore::new(max_connections.min(Semaphore::MAX_PERMITS))),
            first_header: request_header,
            next_header: request_header + client_idle,
            metrics,
        }
    }

    /// The HTTP/1.1 keep-alive loop, each request header under its deadline.
    async fn serve_h1(&self, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let mut session = ServerSession::new_http1(stream);
        // Until the first header has been read, the per-read timeout is Pingora's 60s; the
        // total deadline below is what bounds a slow header.
        session.set_keepalive(if *shutdown.borrow() { None } else { Some(60) });
        let mut deadline = self.first_header;
        loop {
            let seen = Arc::new(HeaderSeen::default());
            session.set_connection_user_context(Some(Box::new(seen.clone())));
            let served = self.proxy.process_new_http(session, shutdown);
            let reused = tokio::select! {
                biased;
                r = served => r,
                () = seen.expired(deadline) => {
                    self.metrics.client_header_timeouts.inc();
                    log::debug!("closing a client connection: request header not complete within {deadline:?}");
                    return None;
                }
            };
            let (stream, settings) = reused?.consume();
            session = ServerSession::new_http1(stream);
            if let Some(settings) = settings {
                settings.apply_to_session(&mut session);
            }
            deadline = self.next_header;
        }
    }
}

/// Counts a client connection in `sluice_client_connections` while it is open.
struct Open<'a>(&'a Metrics);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.client_connections.dec();
    }
}

#[async_trait]
impl ServerApp for ClientConns {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let Ok(_slot) = self.slots.clone().try_acquire_owned() else {
            // Dropping the stream closes it: nothing was read, nothing is owed.
            self.metrics.client_connections_refused.inc();
            return None;
        };
        self.metrics.client_connections.inc();
        let _open = Open(&self.metrics);
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return ServerApp::process_new(&self.proxy, stream, shutdown).await;
        }
        self.serve_h1(stream, shutdown).await
    }

    async fn cleanup(&self) {
        // Wakes connections parked between requests so that shutdown does not wait for them.
        ServerApp::cleanup(&*self.proxy).await;
    }
}

/// Set once the proxy has read a request header.
#[derive(Default)]
struct HeaderSeen(Notify);

impl HeaderSeen {
    /// Completes when `deadline` passes before the header was seen; never completes after.
    async fn expired(&self, deadline: Duration) {
        tokio::select! {
            () = self.0.notified() => std::future::pending().await,
            () = tokio::time::sleep(deadline) => {}
        }
    }
}

/// Called by the proxy with the connection's user context once a request header has been
/// parsed (see the module docs).
pub fn header_complete(prev: Box<dyn Any + Send + Sync>) {
    if let Ok(seen) = prev.downcast::<Arc<HeaderSeen>>() {
        // `notify_one` keeps the wake-up if the deadline future has not been polled yet.
        seen.0.notify_one();
    }
}

/// Bounds how long a kept-alive HTTP/1.1 connection waits for its next request. Pingora
/// leaves the wait unbounded once a client asks for keep-alive (keep-alive `Some(0)`);
/// a connection that will not be kept alive (`None`) stays so.
pub fn keep_alive_for(session: &mut Session, idle: Duration) {
    if session.get_keepalive() == Some(0) {
        session.set_keepalive(Some(idle.as_secs().max(1)));
    }
}
