//! Connections to providers: Pingora's connector (keep-alive pools, HTTP/2 multiplexing),
//! with cold bursts to an HTTP/2 peer coalesced. Pingora reuses an HTTP/2 connection once it
//! exists, but requests that arrive together before then each open their own: a burst of N
//! makes N TLS handshakes and N connections. Here, while a peer has no connection known to
//! work, one request dials and the others wait for it, then all go through the connector at
//! once (finding the new HTTP/2 connection, or dialing HTTP/1 in parallel when the provider
//! chose HTTP/1). A dial that fails lets the next waiter try. Idle HTTP/1 connections are
//! kept by sluice ([`super::idle`]), not in Pingora's pool.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::http::v1::client::HttpSession as Http1;
use pingora::upstreams::peer::{HttpPeer, Peer, ALPN};

use super::idle::IdlePool;
use crate::core::sync::lock;

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
    pub async fn get(&self, peer: &HttpPeer) -> pingora::Result<(HttpSession, bool)> {
        if let Some(stream) = self.idle.take(peer.reuse_hash()) {
            return Ok((HttpSession::H1(Http1::new_with_options(stream, peer)), true));
        }
        Box::pin(self.dial(peer)).await
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
    pub async fn release(&self, session: HttpSession, peer: &HttpPeer, idle: Option<Duration>) {
        match session {
            HttpSession::H1(mut h1) => {
                h1.respect_keepalive();
                // Closes the connection when it cannot be reused (the provider said so, or
                // its answer was not read to the end).
                if let Some(stream) = Box::pin(h1.reuse()).await {
                    self.idle.put(peer.reuse_hash(), stream, idle);
                }
            }
            other => Box::pin(self.connector.release_http_session(other, peer, idle)).await,
        }
    }
}
