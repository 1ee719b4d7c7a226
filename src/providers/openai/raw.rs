//! A client's OpenAI request body that goes upstream as it came, but for `model` and
//! `stream_options` (see `pipeline::decode`).

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value};

use crate::core::members;
use crate::providers::ProviderKind;

/// Whether a `kind` deployment takes the client's OpenAI body as it is, but for `model` and
/// `stream_options` (no quirks to apply): then the body need not be parsed ([`RawBody`]).
pub fn takes_raw_body(kind: ProviderKind) -> bool {
    matches!(kind, ProviderKind::OpenAi | ProviderKind::OpenAiCompatible)
}

/// A client's OpenAI request body kept as it was received (validated in full), with where
/// its `model` and `stream_options` values lie, so that it can go upstream without being
/// parsed into a tree and serialised again.
pub struct RawBody {
    pub text: Bytes,
    pub model: Range<usize>,
    /// The client's `stream_options` value: where it lies and what it is.
    pub stream_options: Option<(Range<usize>, Value)>,
}

impl RawBody {
    /// The upstream body, as [`render`] makes it from the parsed body for a kind that
    /// [`takes_raw_body`]: `model` replaced and, for streams, `stream_options.include_usage`
    /// set (the client's other stream options kept); every other byte as the client sent it.
    pub fn render(&self, upstream_model: &str, stream: bool) -> Bytes {
        let model = serde_json::to_vec(upstream_model).expect("a string serialises");
        let mut edits: Vec<(Range<usize>, &[u8])> = vec![(self.model.clone(), &model)];
        let options;
        if stream {
            let mut opts = match &self.stream_options {
                Some((_, Value::Object(m))) => m.clone(),
                _ => Map::new(),
            };
            opts.insert("include_usage".into(), Value::Bool(true));
            let value = serde_json::to_vec(&opts).expect("JSON values serialise");
            match &self.stream_options {
                Some((at, _)) => {
                    options = value;
                    edits.push((at.clone(), &options));
                }
                None => {
                    // A new last member: before the closing brace (the object has `model`,
                    // so a comma goes first).
                    let end = self.text.trim_ascii_end().len() - 1;
                    options = [&b",\"stream_options\":"[..], &value].concat();
                    edits.push((end..end, &options));
                }
            }
        }
        let mut out = BytesMut::with_capacity(self.text.len() + 64);
        members::splice(&self.text, &mut edits, |piece| out.extend_from_slice(piece));
        out.freeze()
    }
}
