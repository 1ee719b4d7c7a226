//! The types every stage and feature shares, depending on none of them: the client-facing
//! error ([`ApiError`]), configuration errors, secrets that never print, token [`Usage`],
//! guardrail [`Finding`]s, W3C trace context, the one lazily made Redis connection, the
//! stream-translator contract and its chaining, the SSE / NDJSON framing (parsers and
//! writers), poison-tolerant locks, a bounded wait that makes no timer when none is needed
//! and the small HTTP/1.1 client for sluice's own calls out ([`post`]), each written once.

pub mod error;
pub mod fields;
pub mod finding;
pub mod framing;
pub mod members;
pub mod ndjson;
pub mod post;
pub mod prehashed;
pub mod redis;
pub mod secret;
pub mod sse;
pub mod sync;
pub mod time;
pub mod trace;
pub mod translate;
pub mod usage;
pub mod words;

pub use error::{ApiError, ConfigError, ConfigErrors, ErrorCollector, Origin};
pub use finding::Finding;
pub use translate::{Chain, SseEvents, SseInput, StreamTranslator, Watch, Watched};
pub use usage::Usage;
