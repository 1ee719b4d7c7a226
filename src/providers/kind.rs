//! The provider registry: every kind a config can name, and its wire.

use super::{anthropic, gemini, ollama, openai, ProviderWire};

/// Declares [`ProviderKind`], its config names and each kind's [`ProviderWire`]: one line
/// per provider.
macro_rules! providers {
    ($($(#[$doc:meta])* $name:literal => $variant:ident, $wire:expr;)*) => {
        /// Which wire protocol a provider speaks, and its quirks.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ProviderKind {
            $($(#[$doc])* $variant,)*
        }

        impl ProviderKind {
            /// Every kind under its config name (`providers.<name>.kind`).
            pub const ALL: &'static [(&'static str, ProviderKind)] =
                &[$(($name, ProviderKind::$variant),)*];

            /// The kind's wire format.
            pub(super) fn format(self) -> &'static dyn ProviderWire {
                match self {
                    $(ProviderKind::$variant => $wire,)*
                }
            }
        }
    };
}

providers! {
    /// OpenAI's API.
    "openai" => OpenAi, &openai::OPENAI;
    /// Any server speaking OpenAI chat completions (vLLM, LM Studio, Ollama's /v1, …).
    "openai_compatible" => OpenAiCompatible, &openai::COMPATIBLE;
    /// Groq (OpenAI-compatible with its own usage report).
    "groq" => Groq, &openai::GROQ;
    /// xAI (OpenAI-compatible with its own reasoning parameters).
    "xai" => Xai, &openai::XAI;
    /// Ollama's native API.
    "ollama" => Ollama, &ollama::Ollama;
    /// Anthropic Messages.
    "anthropic" => Anthropic, &anthropic::Anthropic;
    /// Google Gemini generateContent.
    "gemini" => Gemini, &gemini::Gemini;
}

impl ProviderKind {
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, k)| *k)
    }

    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(n, _)| *n)
            .unwrap_or("unknown")
    }
}
