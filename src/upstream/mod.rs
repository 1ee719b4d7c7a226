//! Reaching providers: one DNS cache shared by requests and health checks ([`Resolver`]),
//! peers ([`peer`]), connections to them ([`Dialer`]: pooled, a cold HTTP/2 burst sharing
//! one) and the request headers sluice sends ([`request_header`]).

mod dial;
mod h1;
pub mod health;
mod idle;
mod peer;
mod request;
mod resolver;

pub use dial::{Dialer, Upstream};
pub use peer::peer;
pub use request::{read_final_header, request_header};
pub use resolver::{Resolver, DNS_STALE, DNS_TTL};
