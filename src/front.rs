//! Front doors: the APIs clients speak to sluice. Behind every door the request is an OpenAI
//! chat request and the answer an OpenAI chat completion or chunk stream — one pipeline for
//! auth, routing, failover, guardrails, limits, metrics and logs. A door only translates its
//! request on the way in (`inbound`) and the answer and errors on the way out (here).

use bytes::{Bytes, BytesMut};

use crate::api::ApiError;
use crate::inbound::{anthropic, responses, ChatToMessagesStream, ChatToResponsesStream};
use crate::providers::{StreamTranslator, Usage};

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
        Box::new(Chain {
            first: chunks,
            second: encoder,
            scratch: BytesMut::new(),
        })
    }
}

/// Two stream stages: the output of `first` (OpenAI chunks) is the input of `second`.
struct Chain {
    first: Box<dyn StreamTranslator>,
    second: Box<dyn StreamTranslator>,
    scratch: BytesMut,
}

impl StreamTranslator for Chain {
    fn feed(&mut self, input: &[u8], out: &mut BytesMut) -> Result<(), ApiError> {
        let r = self.first.feed(input, &mut self.scratch);
        let chunks = self.scratch.split();
        self.second.feed(&chunks, out)?;
        r
    }

    fn finish(&mut self, out: &mut BytesMut) -> Result<(), ApiError> {
        let r = self.first.finish(&mut self.scratch);
        let chunks = self.scratch.split();
        self.second.feed(&chunks, out)?;
        r?;
        self.second.finish(out)
    }

    fn is_done(&self) -> bool {
        self.second.is_done()
    }

    fn usage(&self) -> Option<Usage> {
        self.first.usage()
    }

    fn abandon_upstream(&self) -> bool {
        self.first.abandon_upstream()
    }

    fn findings(&self) -> Vec<crate::guardrails::Finding> {
        self.first.findings()
    }

    fn error_event(&mut self, e: &ApiError) -> Bytes {
        self.second.error_event(e)
    }
}
