//! sluice: an LLM egress gateway built on Pingora.
//!
//! Clients speak the OpenAI API; sluice authenticates them, routes each request to a provider
//! deployment, rewrites it for that provider and relays the answer back — streamed answers
//! chunk by chunk. See `README.md` for running it and `proxy` for the request path.

pub mod admin;
pub mod body;
pub mod config;
pub mod conns;
pub mod core;
pub mod ctx;
pub mod drain;
pub mod front;
pub mod gateway;
pub mod guardrails;
pub mod health;

pub mod limits;
pub mod pipeline;
pub mod providers;
pub mod proxy;
pub mod respond;
pub mod routing;
pub mod secret;
pub mod server;
pub mod telemetry;
pub mod upstream;
