//! What a guardrail did to a request or an answer, as recorded for logs and metrics.

use std::sync::Arc;

/// One action a guardrail took. Names and kinds only, never matched text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Matches were replaced by `[REDACTED:<kind>]`.
    Redacted {
        guardrail: Arc<str>,
        kinds: Vec<Arc<str>>,
    },
    /// Matches were let through and recorded.
    Logged {
        guardrail: Arc<str>,
        kinds: Vec<Arc<str>>,
    },
    /// The request or answer was stopped.
    Blocked { guardrail: Arc<str>, kind: Arc<str> },
}

impl Finding {
    /// The guardrail that acted.
    pub fn guardrail(&self) -> &str {
        match self {
            Finding::Redacted { guardrail, .. }
            | Finding::Logged { guardrail, .. }
            | Finding::Blocked { guardrail, .. } => guardrail,
        }
    }

    /// What it did: `block`, `redact` or `log`.
    pub fn action(&self) -> &'static str {
        match self {
            Finding::Blocked { .. } => "block",
            Finding::Redacted { .. } => "redact",
            Finding::Logged { .. } => "log",
        }
    }

    /// The kinds of what it found (`aws_access_key`, `email`, …).
    pub fn kinds(&self) -> Vec<&str> {
        match self {
            Finding::Blocked { kind, .. } => vec![kind],
            Finding::Redacted { kinds, .. } | Finding::Logged { kinds, .. } => {
                kinds.iter().map(|k| &**k).collect()
            }
        }
    }
}
