//! The client-facing contract: OpenAI-shaped errors and the small pieces of the OpenAI API
//! that sluice inspects. Request and response bodies are otherwise kept as JSON values so that
//! fields sluice does not know about pass through untouched.

pub mod error;

pub use error::ApiError;
