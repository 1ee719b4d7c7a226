//! Peers: how sluice connects to a provider (TLS and SNI, ALPN, timeouts, keep-alive).

use std::net::SocketAddr;
use std::time::Duration;

use pingora::upstreams::peer::{HttpPeer, PeerOptions, ALPN};

use crate::config::{Config, Provider};

/// Builds the peer for one attempt at `provider` on `addr`.
pub fn peer(provider: &Provider, addr: SocketAddr, cfg: &Config) -> HttpPeer {
    let mut peer = HttpPeer::new(addr, provider.base.tls, provider.base.host.clone());
    let o: &mut PeerOptions = &mut peer.options;
    o.connection_timeout = Some(cfg.timeouts.connect);
    o.total_connection_timeout = Some(cfg.timeouts.connect);
    o.idle_timeout = Some(cfg.upstream.keepalive_idle);
    if provider.http2 {
        // Offer h2; a provider that only speaks HTTP/1.1 still gets HTTP/1.1.
        o.alpn = ALPN::H2H1;
        o.max_h2_streams = cfg.upstream.max_h2_streams;
        o.h2_ping_interval = Some(Duration::from_secs(30));
    } else {
        o.alpn = ALPN::H1;
    }
    o.tcp_keepalive = Some(pingora::protocols::TcpKeepalive {
        idle: Duration::from_secs(60),
        interval: Duration::from_secs(10),
        count: 5,
        #[cfg(target_os = "linux")]
        user_timeout: Duration::from_secs(0),
    });
    peer
}
