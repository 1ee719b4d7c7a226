//! Client connections: how many may be open at once, how long a request header may take, and
//! how much memory an idle one holds.
//!
//! [`ClientConns`] is the listener's application. It runs the HTTP/1.1 keep-alive loop
//! itself, each request read and answered by sluice's own session
//! ([`crate::downstream::h1`]) — not by Pingora's proxy, whose per-request state (upstream
//! phases, cache, modules, retries) sluice never used — so that it can bound what a
//! connection holds and how long it may take:
//!
//! * **A cap on connections** (`server.max_connections`): over it, a new connection is closed
//!   as soon as it is accepted (counted in `sluice_client_connections_refused_total`).
//! * **A total deadline per request header** (`timeouts.request_header`): a client sending
//!   one byte every few seconds cannot hold a connection; the whole header read is bounded.
//! * **Idle keep-alive** (`timeouts.client_idle`): the wait for a next request is bounded,
//!   and while many connections are open an idle one holds nothing but its socket.
//!
//! Each connection is served on a task of its own ([`ClientConns::process_new`] returns at
//! once): Pingora's accepting task reserves room for a TLS handshake (~8.6 KiB) that an open
//! connection no longer needs.
//!
//! HTTP/1.1 pipelining is left off: bytes of a next request that arrive while one is served
//! make the connection close after that answer (see `pipeline::exchange::client_gone`), and
//! no request ever starts from bytes read ahead — which is what lets the loop wait for a
//! request's first byte before it builds the request's state.
//!
//! HTTP/2 connections go to Pingora's own handling (its idle timeout is set from
//! `timeouts.client_idle`), under the same connection cap.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::{Stream, ALPN};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use tokio::sync::Semaphore;

use crate::downstream::{self, h1};
use crate::pipeline::gateway::Live;
use crate::server::proxy::{ClientProxy, RequestCtx};
use crate::telemetry::Metrics;

/// Open connections above which a connection waits for its next request holding only its
/// socket (see [`ClientConns::serve_h1`]).
const LIGHT_WAIT_ABOVE: i64 = 512;

/// The client listener's application: the proxy, behind the connection cap and deadlines.
pub struct ClientConns {
    /// HTTP/2 connections' handling.
    proxy: Arc<HttpProxy<ClientProxy>>,
    /// The generations HTTP/1.1 requests are served by.
    live: Arc<Live>,
    slots: Arc<Semaphore>,
    /// A request header's deadline (`timeouts.request_header`).
    header_deadline: Duration,
    /// How long a kept-alive connection waits for its next request (`timeouts.client_idle`).
    idle: Duration,
    metrics: Arc<Metrics>,
}

impl ClientConns {
    pub fn new(
        proxy: HttpProxy<ClientProxy>,
        live: Arc<Live>,
        max_connections: usize,
        request_header: Duration,
        client_idle: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        ClientConns {
            proxy: Arc::new(proxy),
            live,
            slots: Arc::new(Semaphore::new(max_connections.min(Semaphore::MAX_PERMITS))),
            header_deadline: request_header,
            idle: client_idle,
            metrics,
        }
    }

    /// Serves a connection: HTTP/2 by Pingora's proxy, HTTP/1.1 by [`Self::serve_h1`].
    async fn serve(&self, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return ServerApp::process_new(&self.proxy, stream, shutdown).await;
        }
        self.serve_h1(stream, shutdown).await
    }

    /// The HTTP/1.1 keep-alive loop. While more than [`LIGHT_WAIT_ABOVE`] connections are
    /// open, a connection between requests holds only its socket: a request's state and its
    /// buffers are made once the first byte of one has arrived. The wait for a request's
    /// first bytes is bounded by `request_header` on a new connection and by `client_idle` on
    /// a kept-alive one; the whole header by `request_header` from then (from the
    /// connection's start, on a new one).
    async fn serve_h1(&self, mut stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let mut first = true;
        loop {
            let started = tokio::time::Instant::now();
            let wait = if first {
                self.header_deadline
            } else {
                self.idle
            };
            // A TLS stream cannot be peeked: it proceeds at once, under the header deadline.
            // A connection waiting here when shutdown begins is closed.
            let light = self.metrics.client_connections.get() > LIGHT_WAIT_ABOVE;
            if light {
                let mut stopping = shutdown.clone();
                let mut probe = [0u8; 1];
                let peeked = tokio::select! {
                    r = crate::core::time::timeout(wait, stream.try_peek(&mut probe)) => r,
                    () = shutting_down(&mut stopping) => return None,
                };
                match peeked {
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => return None,
                    Err(_) if first => {
                        self.metrics.client_header_timeouts.inc();
                        return None;
                    }
                    Err(_) => return None,
                }
            }
            let now = if light {
                tokio::time::Instant::now()
            } else {
                started
            };
            let deadline = match (first, light) {
                (true, _) => self.header_deadline.saturating_sub(now - started),
                (false, true) => self.header_deadline,
                (false, false) => self.header_deadline + self.idle,
            };
            // The first bytes by `wait` (less what a peek took), the whole header by the deadline.
            let first_by = started + wait;
            let mut stopping = shutdown.clone();
            let read = tokio::select! {
                // A request that has arrived is served (its answer closes the connection
                // once shutdown has begun).
                biased;
                r = h1::read_request(&mut stream, first_by.max(now), now + deadline) => r,
                // A connection waiting for its next request when shutdown begins is closed.
                () = shutting_down(&mut stopping) => return None,
            };
            let session = match read {
                Ok(h1::Read::Request(session)) => session,
                Ok(h1::Read::Late) => {
                    self.metrics.client_header_timeouts.inc();
                    log::debug!("closing a client connection: request header not complete within {deadline:?}");
                    return None;
                }
                Ok(h1::Read::Silent) if first => {
                    self.metrics.client_header_timeouts.inc();
                    return None;
                }
                Ok(h1::Read::Closed | h1::Read::Silent) => return None,
                Err(e) => {
                    refuse(stream, &e).await;
                    return None;
                }
            };
            let mut session = session.attach(stream);
            if session.method() == http::Method::CONNECT {
                // Pingora's proxy answers CONNECT so; sluice tunnels nothing.
                let _ = session.respond_error(405).await;
                let _ = session.finish().await;
                return None;
            }
            if *shutdown.borrow() {
                session.close_after();
            }
            let mut rc = RequestCtx::new(&self.live);
            let mut client = downstream::Session::H1(&mut session);
            rc.serve(&mut client).await;
            rc.log(&client, None);
            drop(rc);
            stream = session.finish().await?;
            first = false;
        }
    }
}

/// Completes once the server begins to shut down.
async fn shutting_down(watch: &mut ShutdownWatch) {
    if watch.wait_for(|stop| *stop).await.is_err() {
        // The server is gone without a shutdown: nothing will ever say so.
        std::future::pending::<()>().await;
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
    /// Takes a new connection. It is served on a task of its own, and Pingora's task that
    /// accepted it ends here: that task's state (room for a TLS handshake, ~8.6 KiB) would
    /// otherwise stay allocated for as long as the connection is open.
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            // Dropping the stream closes it: nothing was read, nothing is owed.
            self.metrics.client_connections_refused.inc();
            return None;
        };
        let conns = Arc::clone(self);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            conns.metrics.client_connections.inc();
            let _open = Open(&conns.metrics);
            let mut next = Some(stream);
            while let Some(stream) = next {
                // Boxed: the connection's future is too deep to be laid out inline here.
                next = Box::pin(conns.serve(stream, &shutdown)).await;
            }
        });
        None
    }

    async fn cleanup(&self) {
        // Wakes connections parked between requests so that shutdown does not wait for them.
        ServerApp::cleanup(&*self.proxy).await;
    }
}

/// Answers a request whose header could not be read: a malformed one gets a bare 400 (the
/// client did not speak HTTP, so no API error shape applies), a broken connection nothing.
/// Either way the connection closes.
async fn refuse(mut stream: Stream, e: &pingora::Error) {
    use tokio::io::AsyncWriteExt;
    if matches!(e.etype(), pingora::ErrorType::InvalidHTTPHeader) {
        log::debug!("closing a client connection: malformed request header: {e}");
        let _ = stream.write_all(h1::BAD_REQUEST).await;
        let _ = stream.flush().await;
    } else {
        log::debug!("client connection ended while reading a request header: {e}");
    }
    let _ = stream.shutdown().await;
}

/// Gives memory back to the system after a burst of connections has closed.
///
/// glibc's allocator keeps freed memory in its per-thread arenas: after 10,000 connections
/// close, the process keeps the ~100 MiB they used. Every [`TRIM_EVERY`], when the open
/// connections have fallen by at least [`TRIM_AFTER_DROP`] since the last trim,
/// `malloc_trim(0)` hands the free pages back (on the blocking pool: it walks every arena).
pub struct MemoryTrim {
    pub metrics: Arc<Metrics>,
}

/// How often the connection count is looked at.
const TRIM_EVERY: Duration = Duration::from_secs(5);
/// Connections that must have closed since the last trim (or since the peak) to trim again.
const TRIM_AFTER_DROP: i64 = 1000;

#[async_trait]
impl pingora::services::background::BackgroundService for MemoryTrim {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut peak = 0i64;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                () = tokio::time::sleep(TRIM_EVERY) => {}
            }
            let open = self.metrics.client_connections.get();
            peak = peak.max(open);
            if peak - open >= TRIM_AFTER_DROP {
                peak = open;
                let _ = tokio::task::spawn_blocking(trim).await;
            }
        }
    }
}

/// Gives the allocator's free pages back to the system. jemalloc (the default build) returns
/// unused pages on its own only as allocations go on, so after a burst closes and the
/// process goes quiet they would stay resident: its arenas are purged here.
#[cfg(feature = "jemalloc")]
#[allow(unsafe_code)]
fn trim() {
    // `arena.<MALLCTL_ARENAS_ALL>.purge`: every arena's unused dirty and muzzy pages.
    const PURGE_ALL: &[u8] = b"arena.4096.purge\0";
    // SAFETY: a NUL-terminated control name that takes and returns no value, so every
    // pointer is null and the length 0.
    unsafe {
        tikv_jemalloc_sys::mallctl(
            PURGE_ALL.as_ptr().cast(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        );
    }
    glibc_trim();
}

#[cfg(not(feature = "jemalloc"))]
fn trim() {
    glibc_trim();
}

/// Returns glibc's free heap memory (what it still allocates: the system allocator build,
/// and C libraries).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn glibc_trim() {
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn glibc_trim() {}

/// Raises the soft open-file limit to the hard one: every client connection and every
/// upstream connection is a descriptor, and a soft limit of 1,024 (the usual default outside
/// systemd) would cap sluice at a few hundred streams. Returns (soft before, soft now).
#[allow(unsafe_code)]
pub(super) fn raise_open_file_limit() -> Option<(libc::rlim_t, libc::rlim_t)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given, which lives for the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim = raised;
        }
    }
    Some((before, lim.rlim_cur))
}
