//! Token usage, in OpenAI's terms: what providers report and what limits, logs and the
//! ledger read.

use serde_json::Value;

/// Token usage reported by a provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// Prompt tokens served from the provider's cache (part of `prompt_tokens`).
    pub cached_tokens: u64,
    /// Reasoning ("thinking") tokens (part of `completion_tokens`), where reported.
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Output tokens as billed: reasoning tokens are part of `completion_tokens` for most
    /// providers, but some (xAI) report them beside it, with `total_tokens` counting both.
    pub fn billable_completion(&self) -> u64 {
        let beside = self.prompt_tokens + self.completion_tokens + self.reasoning_tokens;
        if self.reasoning_tokens > 0 && self.total_tokens >= beside {
            self.completion_tokens + self.reasoning_tokens
        } else {
            self.completion_tokens
        }
    }

    /// The OpenAI `usage` object.
    pub fn to_json(self) -> Value {
        let mut v = serde_json::json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        });
        if self.cached_tokens > 0 {
            v["prompt_tokens_details"] = serde_json::json!({"cached_tokens": self.cached_tokens});
        }
        if self.reasoning_tokens > 0 {
            v["completion_tokens_details"] =
                serde_json::json!({"reasoning_tokens": self.reasoning_tokens});
        }
        v
    }

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
            cached_tokens: v
                .pointer("/prompt_tokens_details/cached_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            reasoning_tokens: v
                .pointer("/completion_tokens_details/reasoning_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        })
    }
}
