//! Token usage, in OpenAI's terms: what providers report and what limits, logs and the
//! ledger read.

use serde_json::Value;

use crate::core::members;

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

    /// Reads an OpenAI `usage` object from its text, as [`Usage::from_json`] reads its tree
    /// (a member that is not an unsigned integer counts as absent) without building one.
    pub fn from_raw(raw: members::Raw<'_>) -> Option<Usage> {
        let [prompt, completion, total, prompt_details, completion_details] = members::pick(
            raw.get().as_bytes(),
            [
                "prompt_tokens",
                "completion_tokens",
                "total_tokens",
                "prompt_tokens_details",
                "completion_tokens_details",
            ],
        )
        .ok()?;
        let prompt_tokens = number(prompt).unwrap_or(0);
        let completion_tokens = number(completion).unwrap_or(0);
        let detail = |details: Option<members::Raw<'_>>, name: &str| {
            let [n] = members::pick(details?.get().as_bytes(), [name]).ok()?;
            number(n)
        };
        Some(Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: number(total).unwrap_or(prompt_tokens + completion_tokens),
            cached_tokens: detail(prompt_details, "cached_tokens").unwrap_or(0),
            reasoning_tokens: detail(completion_details, "reasoning_tokens").unwrap_or(0),
        })
    }
}

/// A member's value when it is an unsigned integer that fits in 64 bits: digits only, as the
/// tree reader's `as_u64` takes them (`-0`, `1.0` and `1e3` are not).
fn number(value: Option<members::Raw<'_>>) -> Option<u64> {
    let text = value?.get();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_reader_agrees_with_the_tree_reader() {
        let cases = [
            r#"{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42}"#,
            r#"{"prompt_tokens":12,"completion_tokens":30}"#,
            r#"{"prompt_tokens":1.5,"completion_tokens":"7","total_tokens":-3}"#,
            r#"{"prompt_tokens":10,"completion_tokens":5,"total_tokens":20,
                "prompt_tokens_details":{"cached_tokens":4,"audio_tokens":0},
                "completion_tokens_details":{"reasoning_tokens":5}}"#,
            r#"{"prompt_tokens_details":null,"completion_tokens_details":[1,2]}"#,
            r#"{"prompt_tokens":1,"prompt_tokens":2,"completion_tokens":18446744073709551615}"#,
            r#"{"prompt_tokens":18446744073709551616,"completion_tokens":1e3}"#,
            r#"{"prompt_tokens":-0,"completion_tokens":0,"total_tokens":1E2}"#,
            r#"{"prompt_tokens":0.0,"completion_tokens":-1,"total_tokens":true}"#,
            r#"{"prompt_tokens_details":{"cached_tokens":{"n":1}}}"#,
            r#"{}"#,
            r#"[1,2]"#,
            r#""usage""#,
            r#"7"#,
        ];
        // The text as a member's value, as callers find it.
        let raw = |text: &str| format!(r#"{{"usage": {text}}}"#);
        for text in cases {
            let wrapped = raw(text);
            let [u] = members::pick(wrapped.as_bytes(), ["usage"]).unwrap();
            let tree: Value = serde_json::from_str(text).unwrap();
            assert_eq!(
                Usage::from_raw(u.unwrap()),
                Usage::from_json(&tree),
                "usage text {text}"
            );
        }
        let wrapped = raw(cases[3]);
        let [u] = members::pick(wrapped.as_bytes(), ["usage"]).unwrap();
        let u = Usage::from_raw(u.unwrap()).unwrap();
        assert_eq!(
            (u.cached_tokens, u.reasoning_tokens, u.total_tokens),
            (4, 5, 20)
        );
    }
}
