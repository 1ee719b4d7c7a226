//! The types every stage and feature shares, depending on none of them: the client-facing
//! error ([`ApiError`]), configuration errors, secrets that never print, token [`Usage`],
//! guardrail [`Finding`]s, W3C trace context, the one lazily made Redis connection, the stream-translator contract and its chaining, and the SSE / NDJSON framing (parsers and
//! writers), poison-tolerant locks, each written once.

pub mod error;
pub mod finding;
pub mod members;
pub mod ndjson;
pub mod redis;
pub mod secret;
pub mod sse;
pub mod sync;
pub mod trace;
pub mod translate;
pub mod usage;

pub use error::{ApiError, ConfigError, ConfigErrors, ErrorCollector, Origin};
pub use finding::Finding;
pub use translate::{Chain, SseEvents, SseInput, StreamTranslator, Watch, Watched};
pub use usage::Usage;
