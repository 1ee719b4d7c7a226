//! Reaching providers: one DNS cache shared by requests and health checks ([`Resolver`]),
//! peers ([`peer`]), connections to them ([`Dialer`]: pooled, HTTP/2 shared, a cold burst
//! sharing one) and the requests sluice sends ([`Outgoing`]).

mod dial;
mod h1;
pub mod health;
mod idle;
mod peer;
mod request;
mod resolver;
mod shared;

pub use dial::{Dialer, Upstream};
pub use peer::peer;
pub use request::{read_final_header, request_header, Outgoing};
pub use resolver::{Resolver, DNS_STALE, DNS_TTL};

/// A connected loopback pair for unit tests: sluice's side as a Pingora stream, and the
/// provider's side.
#[cfg(test)]
pub(crate) async fn loopback_pair() -> (pingora::protocols::Stream, tokio::net::TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (ours, theirs) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
    let ours: pingora::protocols::l4::stream::Stream = ours.unwrap().into();
    (Box::new(ours), theirs.unwrap().0)
}
