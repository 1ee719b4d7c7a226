//! Unit tests of the guardrails engine.

mod config;
mod cost;
mod detectors;
mod hidden;
mod injection;
mod input;
mod secrets;
mod stream;

use std::sync::Arc;

use super::{compile, Policy, RawGuardrail};

/// A policy of every guardrail in `yaml` (a `guardrails:` list).
pub(super) fn policy(yaml: &str) -> Arc<Policy> {
    let raw: Vec<RawGuardrail> = serde_yaml::from_str(yaml).expect("yaml");
    let g = compile(raw).expect("compile");
    let names: Vec<String> = g.names().map(String::from).collect();
    g.policy(&names, "default_guardrails").expect("policy")
}

/// A policy with one built-in guardrail of `kind` and `action`, applied both ways.
pub(super) fn one(kind: &str, action: &str) -> Arc<Policy> {
    policy(&format!("- {{name: g, type: {kind}, action: {action}}}"))
}

/// Test credentials, built at run time (valid shapes, not real keys).
pub(super) fn openai_key() -> String {
    format!("sk-proj-{}", "Ab3dEf7hIj".repeat(5))
}

pub(super) fn aws_key() -> String {
    "AKIA".to_string() + "Z7QK3M5NPR2TXW4Y"
}
