//! The work a scan does stays linear in the text, however the text is built: hostile inputs
//! that keep many automata alive switch to the linear fallback, and still get the same
//! verdicts.

use super::{one, openai_key, policy};
use crate::guardrails::engine::STEPS_PER_BYTE;
use crate::guardrails::Finding;

const BOTH: &str =
    "- {name: s, type: secrets, action: redact}\n- {name: p, type: pii, action: redact}";

/// Steps a whole-text scan may take: the budget, plus one detector's linear pass per byte.
fn bound(len: usize) -> usize {
    (STEPS_PER_BYTE + 16) * len + (1 << 17)
}

fn check(yaml_or_kind: (&str, &str), text: &str) -> (String, Vec<Finding>, usize, bool) {
    let p = match yaml_or_kind {
        ("yaml", y) => policy(y),
        (kind, action) => one(kind, action),
    };
    let engine = p.output.as_ref().expect("output rules");
    let mut sc = engine.scratch();
    let scan = engine.scan(&mut sc, text, 0, true);
    let steps = sc.steps;
    let v = p.check_output_text(text);
    (v.text, v.findings, steps, scan.linear)
}

#[test]
fn hostile_texts_cost_linear_work() {
    let cases: Vec<(&str, String)> = vec![
        ("private keys", "-----BEGIN PRIVATE KEY-----".repeat(40_000)),
        ("dotted words", "a.".repeat(500_000)),
        ("key prefixes", "sk-".repeat(300_000)),
        ("digits", "4 ".repeat(500_000)),
        ("jwt pieces", "eyJabcdefgh.".repeat(80_000)),
    ];
    for (name, text) in &cases {
        for kind in ["secrets", "pii", "both"] {
            let rule = match kind {
                "both" => ("yaml", BOTH),
                k => (k, "redact"),
            };
            let (_, _, steps, _) = check(rule, text);
            assert!(
                steps <= bound(text.len()),
                "{name} with {kind}: {steps} steps for {} bytes",
                text.len()
            );
        }
    }
}

#[test]
fn the_linear_fallback_finds_what_the_scan_finds() {
    // Enough hostile text to exhaust the budget, then real findings after it.
    let key = openai_key();
    let text = format!(
        "{}!\nthen {key} and mail bob@example.com, done",
        "a.".repeat(200_000)
    );
    let (out, findings, _, linear) = check(("yaml", BOTH), &text);
    assert!(linear, "the hostile prefix exhausts the budget");
    assert!(
        !out.contains(&key),
        "the key after the hostile part is redacted"
    );
    assert!(
        out.ends_with("!\nthen [REDACTED:openai_key] and mail [REDACTED:email], done"),
        "{}",
        &out[out.len().saturating_sub(200)..]
    );
    assert!(findings.iter().any(|f| f.guardrail() == "p"));
    // A block after the hostile part still blocks.
    let (out, findings, _, _) = check(("secrets", "block"), &text);
    assert!(out.is_empty());
    assert!(matches!(&findings[..], [Finding::Blocked { .. }]));
}
