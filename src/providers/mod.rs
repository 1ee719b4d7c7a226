//! Wire formats. Each provider module turns the client's OpenAI-shaped request into the
//! provider's, and the provider's answer — whole or streamed — back into OpenAI's shape.
//! Translation is pure: no sockets here, so it is unit-tested and fuzzed directly.

pub mod openai;

use bytes::BytesMut;

use crate::api::ApiError;

/// Token usage reported by a provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
    /// Reads an OpenAI `usage` object.
    pub fn from_json(v: &serde_json::Value) -> Option<Usage> {
        let obj = v.as_object()?;
        let get = |k: &str| obj.get(k).and_then(serde_json::Value::as_u64);
        let prompt_tokens = get("prompt_tokens").unwrap_or(0);
        let completion_tokens = get("completion_tokens").unwrap_or(0);
        Some(Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: get("total_tokens").unwrap_or(prompt_tokens + completion_tokens),
        })
    }
}

/// Turns a provider's response stream into the client's OpenAI SSE stream, incrementally.
///
/// `feed` may be given any slice of the upstream body; it appends whatever is ready for the
/// client to `out`. An `Err` means the stream is broken (an error event, garbage, an oversize
/// event): the caller sends the error as a final SSE event and ends the stream without `[DONE]`.
pub trait StreamTranslator: Send {
    fn feed(&mut self, input: &[u8], out: &mut BytesMut) -> Result<(), ApiError>;
    /// The upstream body ended cleanly. `Err` when the stream was incomplete.
    fn finish(&mut self, out: &mut BytesMut) -> Result<(), ApiError>;
    /// Whether the terminal event has been seen (nothing more will be emitted).
    fn is_done(&self) -> bool;
    /// Usage seen so far.
    fn usage(&self) -> Option<Usage>;
}
