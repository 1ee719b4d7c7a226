//! HTTP/2 connections to providers, shared by concurrent requests.
//!
//! Pingora's connector takes a connection out of its pool while it opens a stream on it and
//! puts it back after; a request arriving in between finds none and dials its own (a burst
//! of eight on two threads opened four connections). Here a peer's connections stay listed
//! while streams open on them: a connection's own count of streams is the reservation (a
//! full one declines), so no request misses a connection with room. While a peer has no
//! connection with room, one request dials and the others wait for it, then share the new
//! connection: a cold burst makes one TLS and one HTTP/2 handshake. A provider that answers
//! the offer of h2 with HTTP/1.1 is dialed without waiting from then on. A connection leaves
//! the list when it closes, when the provider sends GOAWAY, or once it has carried no stream
//! for the peer's idle timeout (swept once a second).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pingora::connectors::http::v2::{handshake, ConnectionRef, H2HandshakeSettings};
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::Stream;
use pingora::upstreams::peer::{HttpPeer, Peer, ALPN};
use pingora::OkOrErr;

use super::dial::Upstream;
use super::h1::Answer;
use super::idle::{Sweep, Sweeper};
use crate::core::sync::lock;

/// A stream on a shared HTTP/2 connection.
pub struct H2Stream {
    pub session: HttpSession,
    conn: Arc<Conn>,
}

impl H2Stream {
    /// Ends the stream (its answer read to the end); the connection stays shared and is
    /// closed after `idle` without streams.
    pub fn release(self, idle: Option<Duration>) {
        drop(self.session);
        self.conn.touch(idle);
    }
}

/// A shared connection, and when a stream last opened or ended on it.
struct Conn {
    conn: ConnectionRef,
    used: Mutex<Used>,
}

struct Used {
    at: Instant,
    /// How long it stays without streams; `None`: until the provider closes it.
    idle: Option<Duration>,
}

impl Conn {
    fn new(conn: ConnectionRef, idle: Option<Duration>) -> Conn {
        let at = Instant::now();
        let used = Mutex::new(Used { at, idle });
        Conn { conn, used }
    }

    fn touch(&self, idle: Option<Duration>) {
        *lock(&self.used) = Used {
            at: Instant::now(),
            idle,
        };
    }

    /// Whether new streams may still open on it.
    fn open(&self) -> bool {
        !self.conn.is_closed() && !self.conn.is_shutting_down()
    }

    fn expired(&self, now: Instant) -> bool {
        let used = lock(&self.used);
        self.conn.is_idle() && used.idle.is_some_and(|d| now >= used.at + d)
    }
}

/// One peer's connections.
#[derive(Default)]
struct PeerConns {
    conns: Mutex<Vec<Arc<Conn>>>,
    /// Held by the request dialing while no connection has room.
    dialing: tokio::sync::Mutex<()>,
    /// The last dial was answered with HTTP/1.1: dials do not wait for each other.
    speaks_h1: AtomicBool,
}

impl PeerConns {
    /// The first open connection with a free stream (the oldest: streams gather on few
    /// connections).
    fn with_room(&self) -> Option<Arc<Conn>> {
        let mut conns = lock(&self.conns);
        conns.retain(|c| c.open());
        conns
            .iter()
            .find(|c| c.conn.more_streams_allowed())
            .cloned()
    }

    /// A new stream on a connection with room, if there is one.
    async fn stream(&self, idle: Option<Duration>) -> Option<H2Stream> {
        // Another request can take the last free stream between the look and the opening,
        // or the connection can turn out broken: look again, a few times.
        for _ in 0..4 {
            let conn = self.with_room()?;
            match conn.conn.spawn_stream().await {
                Ok(Some(s)) => {
                    conn.touch(idle);
                    let session = HttpSession::H2(s);
                    return Some(H2Stream { session, conn });
                }
                // Full by now, or going away (then marked so by Pingora).
                Ok(None) => {}
                Err(e) => {
                    log::debug!("a shared HTTP/2 connection failed to open a stream: {e}");
                    conn.conn.mark_shutdown();
                }
            }
        }
        None
    }
}

/// Every peer's shared HTTP/2 connections.
pub(super) struct Shared {
    peers: Mutex<HashMap<u64, Arc<PeerConns>>>,
    sweeper: Sweeper,
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared {
            peers: Mutex::new(HashMap::new()),
            sweeper: Sweeper::default(),
        })
    }

    fn peer(&self, peer: &HttpPeer) -> Arc<PeerConns> {
        let mut peers = lock(&self.peers);
        peers.entry(peer.reuse_hash()).or_default().clone()
    }

    /// A stream to `peer` on a shared connection (`true`), or else the connection `dial`
    /// makes: HTTP/2 (then shared), or HTTP/1.1 when the provider chose it.
    pub async fn get(
        self: &Arc<Self>,
        peer: &HttpPeer,
        dial: impl Future<Output = pingora::Result<Stream>>,
    ) -> pingora::Result<(Upstream, bool)> {
        let idle = peer.idle_timeout();
        let p = self.peer(peer);
        if let Some(s) = p.stream(idle).await {
            return Ok((Upstream::H2(Box::new(s)), true));
        }
        let _turn = if p.speaks_h1.load(Ordering::Acquire) {
            None
        } else {
            let turn = p.dialing.lock().await;
            // The request that had the turn may have made a connection with room.
            if let Some(s) = p.stream(idle).await {
                return Ok((Upstream::H2(Box::new(s)), true));
            }
            Some(turn)
        };
        let stream = dial.await?;
        let h2 = speaks_h2(&stream, peer);
        p.speaks_h1.store(!h2, Ordering::Release);
        if !h2 {
            return Ok((Upstream::H1(Answer::new(stream)), false));
        }
        let conn = Arc::new(Conn::new(handshake(stream, settings(peer)).await?, idle));
        let s = conn.conn.spawn_stream().await?.or_err(
            pingora::ErrorType::H2Error,
            "a new HTTP/2 connection has no free stream (the provider may have sent GOAWAY)",
        )?;
        lock(&p.conns).push(conn.clone());
        self.sweeper.start(self);
        let session = HttpSession::H2(s);
        Ok((Upstream::H2(Box::new(H2Stream { session, conn })), false))
    }

    /// Open connections (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        let peers = lock(&self.peers);
        peers.values().map(|p| lock(&p.conns).len()).sum()
    }
}

impl Sweep for Shared {
    /// Lets go of connections that closed, were told to go away, or sat without streams for
    /// their idle time; the last reference closes a connection (its streams hold one too).
    fn sweep(&self) {
        let now = Instant::now();
        let mut gone = Vec::new();
        let mut peers = lock(&self.peers);
        peers.retain(|_, p| {
            let mut conns = lock(&p.conns);
            conns.retain(|c| {
                let keep = c.open() && !c.expired(now);
                if !keep {
                    gone.push(c.clone());
                }
                keep
            });
            // A peer someone is dialing stays, so that its dials keep taking turns.
            !conns.is_empty() || Arc::strong_count(p) > 1
        });
        drop(peers);
        // Closing connections outside the lock.
        drop(gone);
    }
}

/// Whether a new connection speaks HTTP/2: as Pingora's connector decides it (ALPN; without
/// ALPN, only a peer that requires HTTP/2 over plain TCP).
fn speaks_h2(stream: &Stream, peer: &HttpPeer) -> bool {
    match stream.selected_alpn_proto() {
        Some(ALPN::H2) => true,
        Some(_) => false,
        None => {
            !peer.tls()
                && peer
                    .get_peer_options()
                    .is_some_and(|o| o.alpn.get_min_http_version() == 2)
        }
    }
}

/// The HTTP/2 handshake's settings from the peer's options, as Pingora's connector sets them.
fn settings(peer: &HttpPeer) -> H2HandshakeSettings {
    let o = peer.get_peer_options();
    let mut s = H2HandshakeSettings::new();
    s.max_streams = o.map_or(1, |o| o.max_h2_streams);
    s.ping_interval = peer.h2_ping_interval();
    s.stream_window_size = o.and_then(|o| o.h2_stream_window_size);
    s.connection_window_size = o.and_then(|o| o.h2_connection_window_size);
    s
}

#[cfg(test)]
mod tests;
