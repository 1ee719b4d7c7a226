//! The bundled default price table: list prices (standard tier, USD per million tokens, the
//! rates for prompts up to 200K tokens where a provider charges more above) of the current
//! models of the supported providers, as published on [`PRICES_AS_OF`]. A model's price in
//! `pricing:` replaces the table's. Prices change: check them against your contracts.
//!
//! Provider model names carry dated snapshots (`gpt-4o-2024-08-06`,
//! `claude-sonnet-4-5-20250929`) and prefixes (`models/gemini-2.5-flash`); a snapshot is
//! priced as its model.

use super::Price;

/// When the table's prices were taken from the providers' price lists.
pub const PRICES_AS_OF: &str = "2026-06-21";

/// (model, input, cached input, output) in USD per million tokens.
const TABLE: &[(&str, f64, f64, f64)] = &[
    // OpenAI
    ("gpt-5.5", 5.00, 0.50, 30.00),
    ("gpt-5.4", 2.50, 0.25, 15.00),
    ("gpt-5.4-mini", 0.75, 0.075, 4.50),
    ("gpt-5.4-nano", 0.20, 0.02, 1.25),
    ("gpt-5.1", 1.25, 0.125, 10.00),
    ("gpt-5", 1.25, 0.125, 10.00),
    ("gpt-5-mini", 0.25, 0.025, 2.00),
    ("gpt-5-nano", 0.05, 0.005, 0.40),
    ("gpt-4.1", 2.00, 0.50, 8.00),
    ("gpt-4.1-mini", 0.40, 0.10, 1.60),
    ("gpt-4.1-nano", 0.10, 0.025, 0.40),
    ("gpt-4o", 2.50, 1.25, 10.00),
    ("gpt-4o-mini", 0.15, 0.075, 0.60),
    ("o3", 2.00, 0.50, 8.00),
    ("o3-mini", 1.10, 0.55, 4.40),
    ("o4-mini", 1.10, 0.275, 4.40),
    ("text-embedding-3-small", 0.02, 0.02, 0.0),
    ("text-embedding-3-large", 0.13, 0.13, 0.0),
    // Anthropic (cached input: cache reads)
    ("claude-opus-4-6", 5.00, 0.50, 25.00),
    ("claude-opus-4-5", 5.00, 0.50, 25.00),
    ("claude-opus-4-1", 15.00, 1.50, 75.00),
    ("claude-opus-4", 15.00, 1.50, 75.00),
    ("claude-sonnet-4-6", 3.00, 0.30, 15.00),
    ("claude-sonnet-4-5", 3.00, 0.30, 15.00),
    ("claude-sonnet-4", 3.00, 0.30, 15.00),
    ("claude-3-7-sonnet", 3.00, 0.30, 15.00),
    ("claude-haiku-4-5", 1.00, 0.10, 5.00),
    ("claude-3-5-haiku", 0.80, 0.08, 4.00),
    ("claude-3-haiku", 0.25, 0.03, 1.25),
    // Gemini
    ("gemini-2.5-pro", 1.25, 0.125, 10.00),
    ("gemini-2.5-flash", 0.30, 0.03, 2.50),
    ("gemini-2.5-flash-lite", 0.10, 0.01, 0.40),
    ("gemini-2.0-flash", 0.10, 0.025, 0.40),
    // xAI
    ("grok-4", 3.00, 0.75, 15.00),
    ("grok-3", 3.00, 0.75, 15.00),
    ("grok-3-mini", 0.30, 0.075, 0.50),
    // Groq
    ("llama-3.3-70b-versatile", 0.59, 0.59, 0.79),
    ("llama-3.1-8b-instant", 0.05, 0.05, 0.08),
    ("openai/gpt-oss-120b", 0.15, 0.075, 0.60),
    ("openai/gpt-oss-20b", 0.075, 0.0375, 0.30),
];

/// The table's price of a provider's model name, snapshots and `models/` prefix included.
pub fn default_price(model: &str) -> Option<Price> {
    let model = model.strip_prefix("models/").unwrap_or(model);
    TABLE
        .iter()
        .filter(|(name, ..)| {
            model == *name
                || model
                    .strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(is_snapshot)
        })
        .max_by_key(|(name, ..)| name.len())
        .map(|&(_, input, cached, output)| Price {
            input,
            output,
            cached_input: Some(cached),
        })
}

/// A snapshot suffix: a date (`2024-08-06`, `20250929`), `latest`, or `preview…`.
fn is_snapshot(rest: &str) -> bool {
    rest == "latest"
        || rest.starts_with("preview")
        || (!rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit() || c == '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_are_priced_as_their_model() {
        let p = |m: &str| default_price(m).map(|p| (p.input, p.output));
        assert_eq!(p("gpt-4o-mini"), Some((0.15, 0.60)));
        assert_eq!(p("gpt-4o-mini-2024-07-18"), Some((0.15, 0.60)));
        assert_eq!(p("gpt-4o-2024-08-06"), Some((2.50, 10.00)));
        assert_eq!(p("claude-sonnet-4-5-20250929"), Some((3.00, 15.00)));
        assert_eq!(p("claude-3-5-haiku-latest"), Some((0.80, 4.00)));
        assert_eq!(p("models/gemini-2.5-flash"), Some((0.30, 2.50)));
        assert_eq!(p("gemini-2.5-flash-lite"), Some((0.10, 0.40)));
        assert_eq!(p("openai/gpt-oss-120b"), Some((0.15, 0.60)));
        // Not a snapshot of a known model.
        assert_eq!(p("gpt-4o-audio-preview"), None);
        assert_eq!(p("gpt-4o-mini-tts"), None);
        assert_eq!(p("my-finetune"), None);
    }

    #[test]
    fn the_table_is_well_formed() {
        for (name, input, cached, output) in TABLE {
            assert!(
                *input >= 0.0 && *output >= 0.0 && *cached <= *input,
                "{name}"
            );
            assert_eq!(
                TABLE.iter().filter(|(n, ..)| n == name).count(),
                1,
                "{name} twice"
            );
        }
    }
}
