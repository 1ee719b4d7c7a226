//! sluice: an LLM egress gateway built on Pingora.
//!
//! Clients speak the OpenAI API; sluice authenticates them, routes each request to a provider
//! deployment, rewrites it for that provider and relays the answer back — streamed answers
//! chunk by chunk. See `README.md` for running it and `docs/ARCHITECTURE.md` (and [`pipeline`]) for the
//! request path.

pub mod cache;
pub mod config;
pub mod control;
pub mod core;
pub mod ctx;
pub mod downstream;
pub mod front;
pub mod guardrails;
pub mod ledger;
pub mod limits;
pub mod pipeline;
pub mod providers;
pub mod routing;
pub mod server;
pub mod telemetry;
pub mod trace;
pub mod upstream;
