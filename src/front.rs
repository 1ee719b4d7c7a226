//! Front doors: the APIs clients speak to sluice. Behind every door the request is an OpenAI
//! chat request and the answer an OpenAI chat completion or chunk stream — one pipeline for
//! auth, routing, failover, guardrails, limits, metrics and logs. A door only translates its
//! request on the way in (`inbound`) and the answer and errors on the way out (here).

use bytes::Bytes;

use crate::core::{ApiError, Chain, StreamTranslator};
use crate::inbound::{anthropic, responses, ChatToMessagesStream, ChatToResponsesStream};

/// The API a client spoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Front {
    /// OpenAI chat completions, embeddings, models.
    #[default]
    OpenAi,
    /// Anthropic Messages (`/v1/messages`).
    Anthropic,
    /// OpenAI Responses (`/v1/responses`).
    Responses,
}

impl Front {
    /// An error body in this API's shape.
    pub fn error_body(self, e: &ApiError) -> Bytes {
        match self {
            Front::Anthropic => anthropic::error_body(e),
            Front::OpenAi | Front::Responses => e.body(),
        }
    }

    /// A whole OpenAI chat completion → this API's answer.
    pub fn encode_whole(self, completion: Bytes, public_model: &str) -> Result<Bytes, ApiError> {
        match self {
            Front::OpenAi => Ok(completion),
            Front::Anthropic => anthropic::from_chat_response(&completion, public_model),
            Front::Responses => responses::from_chat_response(&completion, public_model),
        }
    }

    /// Puts this API's stream encoder behind a translator that produces OpenAI chunks.
    pub fn encode_stream(
        self,
        chunks: Box<dyn StreamTranslator>,
        public_model: &str,
    ) -> Box<dyn StreamTranslator> {
        let encoder: Box<dyn StreamTranslator> = match self {
            Front::OpenAi => return chunks,
            Front::Anthropic => Box::new(ChatToMessagesStream::new(public_model)),
            Front::Responses => Box::new(ChatToResponsesStream::new(public_model)),
        };
        Box::new(Chain::new(chunks, encoder))
    }
}
