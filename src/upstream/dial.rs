//! Connections to providers. Pingora's transport connector makes them (TCP, TLS, ALPN);
//! sluice keeps them: idle HTTP/1 connections in [`super::idle`], HTTP/2 connections shared
//! by concurrent requests in [`super::shared`] (a cold burst shares the first one), and reads
//! HTTP/1 answers itself ([`super::h1`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pingora::connectors::{ConnectorOptions, TransportConnector};
use pingora::upstreams::peer::{HttpPeer, Peer, ALPN};

use super::h1::Answer;
use super::idle::IdlePool;
use super::shared::{H2Stream, Shared};

/// A connection to a provider, for one exchange.
pub enum Upstream {
    /// HTTP/1.1: the connection, and once the request is written, its answer.
    H1(Answer),
    /// HTTP/2: a stream of a shared connection.
    H2(Box<H2Stream>),
}

impl Upstream {
    /// Reads the header of the final answer, skipping informational (1xx) ones.
    pub async fn read_final_header(&mut self) -> pingora::Result<()> {
        match self {
            Upstream::H1(a) => a.read_header().await,
            Upstream::H2(s) => super::read_final_header(&mut s.session).await,
        }
    }

    /// The answer's status, once its header is read.
    pub fn status(&self) -> Option<u16> {
        match self {
            Upstream::H1(a) => a.status(),
            Upstream::H2(s) => s.session.response_header().map(|h| h.status.as_u16()),
        }
    }

    /// The first value of the answer's header field `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        match self {
            Upstream::H1(a) => a.fields().get(name),
            Upstream::H2(s) => s
                .session
                .response_header()?
                .headers
                .get(name)
                .map(|v| v.as_bytes()),
        }
    }

    /// The next piece of the answer's body; `None` at its end.
    pub async fn read_body(&mut self) -> pingora::Result<Option<Bytes>> {
        match self {
            Upstream::H1(a) => a.read_body().await,
            Upstream::H2(s) => s.session.read_response_body().await,
        }
    }

    /// Whether the answer's body has been read to its end.
    pub fn is_done(&mut self) -> bool {
        match self {
            Upstream::H1(a) => a.is_done(),
            Upstream::H2(s) => s.session.response_done(),
        }
    }
}

/// Reaches providers; shared by every generation of the config.
pub struct Dialer {
    transport: TransportConnector,
    pub(super) shared: Arc<Shared>,
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
            shared: Shared::new(),
            transport: TransportConnector::new(Some(opts)),
        }
    }

    /// A connection to `peer`, from the pool when one is there (`true`).
    ///
    /// Dialing (TCP, TLS, the HTTP/2 handshake) is boxed: several KiB of state that every
    /// request's future would otherwise reserve for its whole life — a stream's too, long
    /// after it connected.
    pub async fn get(&self, peer: &HttpPeer) -> pingora::Result<(Upstream, bool)> {
        if let Some(stream) = self.idle.take(peer.reuse_hash()) {
            return Ok((Upstream::H1(Answer::new(stream)), true));
        }
        Box::pin(self.dial(peer)).await
    }

    async fn dial(&self, peer: &HttpPeer) -> pingora::Result<(Upstream, bool)> {
        let dial = self.transport.new_stream(peer);
        if allows_h2(peer) {
            return self.shared.get(peer, dial).await;
        }
        Ok((Upstream::H1(Answer::new(dial.await?)), false))
    }

    /// Gives a connection back once its answer was read to the end: HTTP/1 kept idle for
    /// `idle`, an HTTP/2 stream ended on its shared connection. Otherwise the HTTP/1
    /// connection is closed, the HTTP/2 stream reset; so is an HTTP/1 connection either side
    /// asked to close.
    pub fn release(&self, up: Upstream, peer: &HttpPeer, idle: Option<Duration>) {
        match up {
            Upstream::H1(answer) => {
                if let Some(stream) = answer.reusable() {
                    self.idle.put(peer.reuse_hash(), stream, idle);
                }
            }
            Upstream::H2(mut s) => {
                if s.session.response_done() {
                    s.release(idle);
                }
            }
        }
    }
}
