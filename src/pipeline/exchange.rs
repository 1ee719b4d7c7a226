//! The HTTP exchange with a provider: request headers built from scratch, pooled connections
//! (a stale pooled connection is replaced), bounded reads that give up when the client leaves,
//! and returning connections to the pool.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pingora::upstreams::peer::HttpPeer;

use super::attempt::{AttemptError, Deadline};
use crate::config::Provider;
use crate::core::time::{Lapse, Watchdog};
use crate::core::ApiError;
use crate::downstream::Session;
use crate::pipeline::gateway::Gateway;
use crate::upstream::{Outgoing, Upstream};

/// Largest error body read from a provider.
pub(super) const MAX_ERROR_BODY: usize = 1 << 20;
/// How long to wait for the end of a provider's body after its terminal event.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
/// How many pooled connections may turn out to be stale before a fresh one is used.
const STALE_RETRIES: usize = 2;

/// What stopped a read from the provider.
pub(super) enum ReadFail {
    Timeout(&'static str),
    Io(String),
    ClientGone,
}

/// Connects, sends the request and reads the response header. A pooled connection that turns
/// out to be closed is replaced before anything was received, which is always safe: the
/// provider never saw a complete request on it.
pub(super) async fn exchange_headers(
    gw: &Gateway,
    session: &mut Session<'_>,
    peer: &HttpPeer,
    provider: &Provider,
    req: &Outgoing<'_>,
    body: &Bytes,
    deadline: &Deadline,
) -> Result<Upstream, AttemptError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (up, reused) = connect(gw, peer, provider, deadline).await?;
        match send(gw, session, up, provider, (req, body), deadline).await? {
            Ok(up) => return Ok(up),
            Err(_) if reused && attempts <= STALE_RETRIES => {
                log::debug!(
                    "pooled connection to {} was stale; reconnecting",
                    provider.name
                );
            }
            Err(e) => {
                return Err(AttemptError::failed(
                    ApiError::bad_gateway(format!(
                        "The upstream provider '{}' closed the connection without answering: {}.",
                        provider.name,
                        describe(&e)
                    ))
                    .with_code("upstream_connection_failed"),
                ))
            }
        }
    }
}

/// A connection to the peer, from the pool when one is idle there (`true`).
async fn connect(
    gw: &Gateway,
    peer: &HttpPeer,
    provider: &Provider,
    deadline: &Deadline,
) -> Result<(Upstream, bool), AttemptError> {
    let (connect_t, _) = deadline.cap(gw.cfg.timeouts.connect);
    match crate::core::time::timeout(connect_t, gw.connector.get(peer)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(AttemptError::failed(
            ApiError::bad_gateway(format!(
                "Could not connect to the upstream provider '{}': {}.",
                provider.name,
                describe(&e)
            ))
            .with_code("upstream_unreachable"),
        )),
        Err(_) => Err(AttemptError::failed(ApiError::gateway_timeout(format!(
            "Connecting to the upstream provider '{}' timed out after {}.",
            provider.name,
            secs(connect_t)
        )))),
    }
}

/// Sends the request and waits for the response header. The inner `Err` is a connection
/// that failed before the provider answered (on a pooled connection: possibly stale).
async fn send(
    gw: &Gateway,
    session: &mut Session<'_>,
    mut up: Upstream,
    provider: &Provider,
    (req, body): (&Outgoing<'_>, &Bytes),
    deadline: &Deadline,
) -> Result<pingora::Result<Upstream>, AttemptError> {
    let first_byte = gw.cfg.timeouts.first_byte;
    let (write_t, _) = deadline.cap(first_byte);
    match write_request(&mut up, req, body, write_t).await {
        Ok(false) => {}
        Ok(true) => return Ok(Ok(up)),
        Err(e) => return Ok(Err(e)),
    }
    let (t, which) = deadline.cap(first_byte);
    let mut watch = true;
    let read = tokio::select! {
        r = crate::core::time::timeout(t, up.read_final_header()) => r,
        // Dropping the connection closes it: the provider stops working for a client that
        // is no longer there.
        _ = client_gone(session, &mut watch) => return Err(AttemptError::ClientGone),
    };
    let read = read.map_err(|_| {
        AttemptError::failed(ApiError::gateway_timeout(format!(
            "The upstream provider '{}' did not respond within {}{}.",
            provider.name,
            secs(t),
            if which == "total" {
                " (the request's total time limit)"
            } else {
                ""
            }
        )))
    })?;
    Ok(read.map(|()| up))
}

/// How long an HTTP/1.1 provider that failed the request's write is given to show the
/// answer it sent before it stopped reading (it is normally there already).
const EARLY_ANSWER: Duration = Duration::from_secs(1);

/// Largest body sent in the same write as the request header (copied behind it); a larger
/// one follows in a second write.
const ONE_WRITE_BODY: usize = 64 << 10;

/// Writes the request. Over HTTP/1 the header and a body of up to [`ONE_WRITE_BODY`] go out
/// in one write: one segment and one wakeup of the provider. A `connection: close` in the
/// provider's configured headers means the connection is not reused after the answer.
///
/// `true`: the provider answered before it took the whole request, and its answer's header
/// is read; that answer stands. A server may refuse a request from its header alone (a body
/// too large, a key refused) and stop reading: over HTTP/1.1 it closes the connection, over
/// HTTP/2 it resets the rest of the stream with NO_ERROR (RFC 9113 §8.1); either way the
/// body's write fails, with the answer already sent.
async fn write_request(
    up: &mut Upstream,
    req: &Outgoing<'_>,
    body: &Bytes,
    write_t: Duration,
) -> pingora::Result<bool> {
    use tokio::io::AsyncWriteExt;

    let answer = match up {
        Upstream::H1(answer) => answer,
        Upstream::H2(h2) => {
            let h2 = &mut h2.session;
            h2.set_write_timeout(Some(write_t));
            h2.write_request_header(Box::new(req.header()?)).await?;
            let sent = match h2.write_request_body(body.clone(), true).await {
                Ok(()) => h2.finish_request_body().await,
                Err(e) => Err(e),
            };
            return match sent {
                Ok(()) => Ok(false),
                Err(_) if answered(h2).await => Ok(true),
                Err(e) => Err(e),
            };
        }
    };
    answer.requested(req.closes());
    let whole = body.len() <= ONE_WRITE_BODY;
    let wire = req.to_h1(if whole { body } else { &[] });
    let stream = answer.stream_mut();
    let written = crate::core::time::timeout(write_t, async {
        stream.write_all(&wire).await?;
        if !whole {
            stream.write_all(body).await?;
        }
        stream.flush().await
    })
    .await;
    match written {
        Ok(Ok(())) => Ok(false),
        Ok(Err(e)) => {
            // The request was cut: the connection is not reused, whatever comes.
            answer.requested(true);
            // A connection that was merely dead (a stale one from the pool) ends at once.
            let wait = EARLY_ANSWER.min(write_t);
            let early = crate::core::time::timeout(wait, answer.read_header()).await;
            if let Ok(Ok(())) = early {
                return Ok(true);
            }
            Err(pingora::Error::because(
                pingora::ErrorType::WriteError,
                "while writing the request",
                e,
            ))
        }
        Err(_) => pingora::Error::e_explain(
            pingora::ErrorType::WriteTimedout,
            "while writing the request (timeout)",
        ),
    }
}

/// Whether the answer's final header is already here (then it is read), without waiting.
async fn answered(h2: &mut pingora::protocols::http::client::HttpSession) -> bool {
    use std::future::Future;
    use std::task::Poll;
    let mut read = std::pin::pin!(crate::upstream::read_final_header(h2));
    let now = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
    matches!(now, Poll::Ready(Ok(())))
}

fn describe(e: &pingora::Error) -> String {
    // The error type is enough to act on and never carries request data or credentials.
    e.etype().as_str().to_string()
}

fn secs(d: Duration) -> String {
    if d.as_millis() % 1000 == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

impl ReadFail {
    /// The error for a read that failed; `None` when the client left.
    pub(super) fn error(self, provider: &Provider) -> Option<ApiError> {
        match self {
            ReadFail::Timeout(which) => Some(ApiError::gateway_timeout(format!(
                "The upstream provider '{}' stopped sending its response ({} timeout).",
                provider.name, which
            ))),
            ReadFail::Io(what) => Some(
                ApiError::bad_gateway(format!(
                    "The connection to the upstream provider '{}' failed while reading its \
                     response: {what}.",
                    provider.name
                ))
                .with_code("upstream_connection_failed"),
            ),
            ReadFail::ClientGone => None,
        }
    }

    /// The failed read as the attempt's outcome.
    pub(super) fn into_error(self, provider: &Provider) -> AttemptError {
        self.error(provider)
            .map_or(AttemptError::ClientGone, AttemptError::failed)
    }
}

/// The error recorded for a client that went away; its answer is never seen.
pub(super) fn client_closed() -> ApiError {
    ApiError::invalid_request("The client closed the connection.").with_code("client_closed")
}

/// Watches the client connection while waiting on the provider. Resolves when the client has
/// gone away; stays pending otherwise.
pub(super) async fn client_gone(session: &mut Session<'_>, watch: &mut bool) {
    if !*watch {
        return std::future::pending().await;
    }
    match session.read_body_or_idle(true).await {
        // Bytes after the request while it is served (a pipelined request): one of them
        // has been read, so the connection cannot carry another request. This one is
        // answered in full, then the connection closes (see `conns`).
        Err(e) if *e.etype() == pingora::ErrorType::ConnectError => {
            session.close_after();
            *watch = false;
            std::future::pending::<()>().await
        }
        Err(_) => {}
        Ok(_) => {
            *watch = false;
            std::future::pending::<()>().await
        }
    }
}

/// One read from the provider, bounded by `dog` (its idle limit from now, and the
/// request's end), abandoned if the client goes away.
pub(super) async fn read_chunk(
    up: &mut Upstream,
    session: &mut Session<'_>,
    watch: &mut bool,
    dog: &mut Watchdog,
) -> Result<Option<Bytes>, ReadFail> {
    dog.fed(Instant::now());
    tokio::select! {
        biased;
        r = up.read_body() => r.map_err(|e| ReadFail::Io(describe(&e))),
        lapse = dog.expired() => Err(ReadFail::Timeout(match lapse {
            Lapse::Idle => "idle",
            Lapse::Total => "total",
        })),
        _ = client_gone(session, watch) => Err(ReadFail::ClientGone),
    }
}

/// Reads a whole response body of at most `limit` bytes.
pub(super) async fn read_whole(
    up: &mut Upstream,
    session: &mut Session<'_>,
    limit: usize,
    deadline: &Deadline,
    idle: Duration,
) -> Result<Bytes, ReadFail> {
    let mut buf = BytesMut::new();
    let mut watch = true;
    let mut dog = Watchdog::new(idle, deadline.end());
    while let Some(chunk) = read_chunk(up, session, &mut watch, &mut dog).await? {
        if buf.len() + chunk.len() > limit {
            return Err(ReadFail::Io(format!(
                "the response is larger than {limit} bytes"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Returns a connection whose exchange completed to the pool; others are closed.
pub(super) fn release(gw: &Gateway, up: Upstream, peer: &HttpPeer) {
    let idle = Some(gw.cfg.upstream.keepalive_idle);
    gw.connector.release(up, peer, idle);
}

/// After the terminal event, reads what is left of the provider's body (briefly) so the
/// connection can go back to the pool; a provider that keeps it open is cut off instead.
pub(super) async fn drain_and_release(gw: &Gateway, mut up: Upstream, peer: &HttpPeer) {
    let drained = crate::core::time::timeout(DRAIN_TIMEOUT, async {
        let mut left = MAX_ERROR_BODY;
        while !up.is_done() {
            match up.read_body().await {
                Ok(Some(b)) if b.len() <= left => left -= b.len(),
                Ok(None) => break,
                _ => return false,
            }
        }
        true
    })
    .await;
    if matches!(drained, Ok(true)) {
        release(gw, up, peer);
    }
}
