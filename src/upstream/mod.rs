//! Reaching providers: one DNS cache shared by requests and health checks ([`Resolver`]),
//! peers ([`peer`]) and the request headers sluice sends ([`request_header`]).

pub mod health;
mod peer;
mod request;
mod resolver;

pub use peer::peer;
pub use request::{read_final_header, request_header};
pub use resolver::{Resolver, DNS_STALE, DNS_TTL};
