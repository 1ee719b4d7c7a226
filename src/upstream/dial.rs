//! Connections to providers: Pingora's connector (keep-alive pools, HTTP/2 multiplexing),
//! with cold bursts to an HTTP/2 peer coalesced. Pingora reuses an HTTP/2 connection once it
//! exists, but requests that arrive together before then each open their own: a burst of N
//! makes N TLS handshakes and N connections. Here, while a peer has no connection known to
//! work, one request dials and the others wait for it, then all go through the connector at
//! once (finding the new HTTP/2 connection, or dialing HTTP/1 in parallel when the provider
//! chose HTTP/1). A dial that fails lets the next waiter try. Idle HTTP/1 connections are
//! kept by sluice ([`super::idle`]), not in Pingora's pool, and their answers are read by
//! sluice ([`super::h1`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::http::ResponseHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::{HttpPeer, Peer, ALPN};

use super::h1::Answer;
use super::idle::IdlePool;
use crate::core::sync::lock;

/// A connection to a provider, for one exchange.
pub enum Upstream {
    /// HTTP/1.1: the connection, and once the request is written, its answer.
    H1(Answer),
    /// HTTP/2: a stream of Pingora's shared connection.
    H2(Box<HttpSession>),
}

impl Upstream {
    fn from_pingora(session: HttpSession) -> Upstream {
        match session {
            HttpSession::H1(h1) => Upstream::H1(Answer::new(h1.into_inner())),
            other => Upstream::H2(Box::new(other)),
        }
    }

    /// Reads the header of the final answer, skipping informational (1xx) ones.
    pub async fn read_final_header(&mut self) -> pingora::Result<()> {
        match self {
            Upstream::H1(a) => a.read_header().await,
            Upstream::H2(s) => super::read_final_header(s).await,
        }
    }

    /// The answer's header, once read.
    pub fn response_header(&self) -> Option<&ResponseHeader> {
        match self {
            Upstream::H1(a) => a.header(),
            Upstream::H2(s) => s.response_header(),
        }
    }

    /// The next piece of the answer's body; `None` at its end.
    pub async fn read_body(&mut self) -> pingora::Result<Option<Bytes>> {
        match self {
            Upstream::H1(a) => a.read_body().await,
            Upstream::H2(s) => s.read_response_body().await,
        }
    }

    /// Whether the answer's body has been read to its end.
    pub fn is_done(&mut self) -> bool {
        match self {
            Upstream::H1(a) => a.is_done(),
            Upstream::H2(s) => s.response_done(),
        }
    }
}

/// One peer's dial gate.
#[derive(Default)]
struct Gate {
    /// A connection to the peer was made since the last cold dial.
    warm: AtomicBool,
    /// Held by the request making the first connection.
    dialing: tokio::sync::Mutex<()>,
}

/// Reaches providers; shared by every generation of the config.
pub struct Dialer {
    connector: Connector,
    gates: Mutex<HashMap<u64, Arc<Gate>>>,
    idle: Arc<IdlePool>,
}

/// Whether the peer may speak HTTP/2 (ALPN offers h2).
fn allows_h2(peer: &HttpPeer) -> bool {
    peer.get_peer_options()
        .is_some_and(|o| o.alpn.get_max_http_version() == 2 && !matches!(o.alpn, ALPN::Custom(_)))
}

impl Dialer {
    pub fn new(opts: ConnectorOptions) -> Dialer {
        Dialer {
            idle: IdlePool::new(opts.keepalive_pool_size),
            connector: Connector::new(Some(opts)),
            gates: Mutex::new(HashMap::new()),
        }
    }

    fn gate(&self, peer: &HttpPeer) -> Arc<Gate> {
        let mut gates = lock(&self.gates);
        gates.entry(peer.reuse_hash()).or_default().clone()
    }

    /// A connection to `peer`, from the pool when one is there (`true`).
    ///
    /// Pingora's connect and release futures are boxed here: dialing (TCP, TLS, HTTP/2
    /// handshake) and pooling are several KiB of state that every request's future would
    /// otherwise reserve for its whole life — a stream's too, long after it connected.
    pub async fn get(&self, peer: &HttpPeer) -> pingora::Result<(Upstream, bool)> {
        if let Some(stream) = self.idle.take(peer.reuse_hash()) {
            return Ok((Upstream::H1(Answer::new(stream)), true));
        }
        let (session, reused) = Box::pin(self.dial(peer)).await?;
        Ok((Upstream::from_pingora(session), reused))
    }

    async fn dial(&self, peer: &HttpPeer) -> pingora::Result<(HttpSession, bool)> {
        if !allows_h2(peer) {
            return self.connector.get_http_session(peer).await;
        }
        let gate = self.gate(peer);
        if !gate.warm.load(Ordering::Acquire) {
            let _dialing = gate.dialing.lock().await;
            if !gate.warm.load(Ordering::Acquire) {
                // The first of a cold burst: the others wait for this dial.
                let got = self.connector.get_http_session(peer).await;
                if got.is_ok() {
                    gate.warm.store(true, Ordering::Release);
                }
                return got;
            }
        }
        let got = self.connector.get_http_session(peer).await;
        if let Ok((HttpSession::H2(_), false)) = &got {
            // A new HTTP/2 connection outside the gate: the pool was empty (its connection
            // closed) or full. Either way the next burst dials through the gate again.
            gate.warm.store(false, Ordering::Release);
        }
        got
    }

    /// Gives a connection back to the pool (HTTP/1 kept alive for `idle`, HTTP/2 shared).
    pub async fn release(&self, up: Upstream, peer: &HttpPeer, idle: Option<Duration>) {
        match up {
            // Closes the connection when it cannot be reused (a side asked to close, or its
            // answer was not read to the end).
            Upstream::H1(answer) => {
                if let Some(stream) = answer.reusable() {
                    self.idle.put(peer.reuse_hash(), stream, idle);
                }
            }
            Upstream::H2(s) => Box::pin(self.connector.release_http_session(*s, peer, idle)).await,
        }
    }
}
