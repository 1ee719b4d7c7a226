//! Incremental parsers for provider stream framings. They are fed arbitrary byte slices — an
//! event, a line or a UTF-8 character may be split anywhere — and give the same events as if
//! the whole stream had arrived at once. Memory per stream is bounded by the largest event.

pub mod ndjson;
pub mod sse;
