//! Output guardrails on whole answers: every text of every choice's message, checked at
//! once; a block withholds the message.

use serde_json::{Map, Value};

use super::{flatten_content, TEXT_FIELDS};
use crate::guardrails::{Filtered, Finding, HiddenFilter, OutputVerdict, Policy};

/// Applies the output guardrails to a whole chat completion (JSON). Returns the answer to
/// send and what the guardrails did. A block replaces the choice's message by an empty one
/// with `finish_reason: "content_filter"`.
pub(crate) fn guard_completion(policy: &Policy, body: &[u8]) -> (Option<Vec<u8>>, Vec<Finding>) {
    let mut findings = Vec::new();
    let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
        return (None, findings);
    };
    let mut changed = false;
    let mut hidden = policy.hidden_filter();
    for choice in choices_mut(&mut v) {
        let Some(msg) = choice.get_mut("message").and_then(Value::as_object_mut) else {
            continue;
        };
        let mut blocked = guard_message(policy, msg, &mut changed, &mut findings);
        if let Some(h) = hidden.as_mut().filter(|_| !blocked) {
            blocked = filter_hidden(h, msg, &mut changed);
        }
        if blocked {
            withhold_message(msg);
            choice["finish_reason"] = Value::from("content_filter");
            changed = true;
        }
    }
    findings.extend(hidden.as_ref().and_then(HiddenFilter::finding));
    let out = changed.then(|| serde_json::to_vec(&v).expect("JSON values serialise"));
    (out, findings)
}

/// The choices of a chat completion.
fn choices_mut(v: &mut Value) -> impl Iterator<Item = &mut Value> {
    v.get_mut("choices")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

/// Checks every text of an answer's message (content, the [`TEXT_FIELDS`], function-call and
/// tool-call arguments), applying redactions in place. Whether any check blocks.
fn guard_message(
    policy: &Policy,
    msg: &mut Map<String, Value>,
    changed: &mut bool,
    findings: &mut Vec<Finding>,
) -> bool {
    let mut blocked = false;
    if let Some(c) = msg.get_mut("content") {
        flatten_content(c);
    }
    for field in std::iter::once("content").chain(TEXT_FIELDS) {
        if let Some(Value::String(text)) = msg.get_mut(field) {
            let verdict = policy.check_output_text(text);
            blocked |= apply_verdict(verdict, text, changed, findings);
        }
    }
    if let Some(Value::String(args)) = msg
        .get_mut("function_call")
        .and_then(|f| f.get_mut("arguments"))
    {
        let verdict = policy.check_output_arguments(args);
        blocked |= apply_verdict(verdict, args, changed, findings);
    }
    for call in msg
        .get_mut("tool_calls")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(Value::String(args)) = call.pointer_mut("/function/arguments") {
            let verdict = policy.check_output_arguments(args);
            blocked |= apply_verdict(verdict, args, changed, findings);
        }
    }
    blocked
}

/// When the guardrails did anything, puts the verdict's text in place of `text` and keeps its
/// findings. Whether the verdict blocks.
fn apply_verdict(
    verdict: OutputVerdict,
    text: &mut String,
    changed: &mut bool,
    findings: &mut Vec<Finding>,
) -> bool {
    let blocked = verdict.blocked().is_some();
    if !verdict.findings.is_empty() {
        *changed = true;
        *text = verdict.text;
        findings.extend(verdict.findings);
    }
    blocked
}

/// Passes every text of a message through the hidden-character filter. Whether it blocks.
fn filter_hidden(h: &mut HiddenFilter, msg: &mut Map<String, Value>, changed: &mut bool) -> bool {
    for text in message_texts(msg) {
        match h.whole(text.clone()) {
            Filtered::Pass(t) if t != *text => {
                *text = t;
                *changed = true;
            }
            Filtered::Pass(_) => {}
            Filtered::Block { .. } => return true,
        }
    }
    false
}

/// The texts of a message: content, the [`TEXT_FIELDS`], function-call and tool-call
/// arguments.
fn message_texts(msg: &mut Map<String, Value>) -> Vec<&mut String> {
    let mut out = Vec::new();
    for (k, v) in msg.iter_mut() {
        let k = k.as_str();
        if k == "content" || TEXT_FIELDS.contains(&k) {
            if let Value::String(t) = v {
                out.push(t);
            }
        } else if k == "function_call" {
            if let Some(Value::String(a)) = v.get_mut("arguments") {
                out.push(a);
            }
        } else if let ("tool_calls", Value::Array(calls)) = (k, v) {
            for call in calls.iter_mut() {
                if let Some(Value::String(a)) = call.pointer_mut("/function/arguments") {
                    out.push(a);
                }
            }
        }
    }
    out
}

/// The texts of every choice's message of a chat completion, for the output webhooks.
pub(crate) fn answer_texts(v: &mut Value) -> Vec<&mut String> {
    let mut out = Vec::new();
    for choice in choices_mut(v) {
        if let Some(msg) = choice.get_mut("message").and_then(Value::as_object_mut) {
            if let Some(c) = msg.get_mut("content") {
                flatten_content(c);
            }
            out.extend(message_texts(msg));
        }
    }
    out
}

/// Withholds every choice's message of a chat completion (`finish_reason: "content_filter"`).
pub(crate) fn withhold_all(v: &mut Value) {
    for choice in choices_mut(v) {
        if let Some(msg) = choice.get_mut("message").and_then(Value::as_object_mut) {
            withhold_message(msg);
            choice["finish_reason"] = Value::from("content_filter");
        }
    }
}

/// Empties a blocked message: no content, tool calls, function call or other text.
fn withhold_message(msg: &mut Map<String, Value>) {
    msg.insert("content".into(), Value::Null);
    msg.remove("tool_calls");
    msg.remove("function_call");
    for field in TEXT_FIELDS {
        msg.remove(field);
    }
}
