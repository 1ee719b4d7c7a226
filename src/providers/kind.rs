//! The provider kinds a config can name.

/// Which wire protocol a provider speaks, and its quirks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    OpenAi,
    OpenAiCompatible,
    Groq,
    Xai,
    Ollama,
    Anthropic,
    Gemini,
}

impl ProviderKind {
    /// Every kind under its config name (`providers.<name>.kind`).
    pub const ALL: [(&'static str, ProviderKind); 7] = [
        ("openai", ProviderKind::OpenAi),
        ("openai_compatible", ProviderKind::OpenAiCompatible),
        ("groq", ProviderKind::Groq),
        ("xai", ProviderKind::Xai),
        ("ollama", ProviderKind::Ollama),
        ("anthropic", ProviderKind::Anthropic),
        ("gemini", ProviderKind::Gemini),
    ];

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
