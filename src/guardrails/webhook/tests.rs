//! Webhook guardrails without a service: the contract's parsing, spans, the cache key and
//! config errors. Calls to a real service are in `tests/guardrails_webhook.rs`.

use super::super::tests::policy;
use super::super::{compile, RawGuardrail};
use super::*;

#[test]
fn verdicts_are_read_as_the_contract_says() {
    let texts = ["hello world", "second"];
    assert_eq!(
        parse_verdict(br#"{"verdict":"allow"}"#, &texts),
        Ok(Verdict::Allow)
    );
    assert_eq!(
        parse_verdict(br#"{"verdict":"block","kind":"prompt_injection"}"#, &texts),
        Ok(Verdict::Block {
            kind: "prompt_injection".into()
        })
    );
    // A kind that is not a plain name is recorded as `webhook`.
    assert_eq!(
        parse_verdict(br#"{"verdict":"block","kind":"a b"}"#, &texts),
        Ok(Verdict::Block {
            kind: "webhook".into()
        })
    );
    // Redact without findings blocks; with findings, spans in characters.
    assert!(matches!(
        parse_verdict(br#"{"verdict":"redact"}"#, &texts),
        Ok(Verdict::Block { .. })
    ));
    let v = parse_verdict(
        br#"{"verdict":"redact","findings":[{"text":1,"start":0,"end":3,"kind":"name"}]}"#,
        &texts,
    );
    assert_eq!(
        v,
        Ok(Verdict::Redact {
            spans: vec![Span {
                text: 1,
                start: 0,
                end: 3,
                kind: "name".into()
            }]
        })
    );
    for bad in [
        &br#"not json"#[..],
        br#"{"verdict":"maybe"}"#,
        br#"{}"#,
        br#"{"verdict":"redact","findings":[{"text":0,"start":5,"end":99}]}"#,
        br#"{"verdict":"redact","findings":[{"text":7,"start":0,"end":1}]}"#,
    ] {
        assert!(parse_verdict(bad, &texts).is_err(), "{bad:?}");
    }
}

#[test]
fn spans_count_characters_not_bytes() {
    let mut t = "héllo wörld".to_string();
    let spans = [Span {
        text: 0,
        start: 6,
        end: 11,
        kind: "x".into(),
    }];
    redact(&mut t, 0, &spans);
    assert_eq!(t, "héllo [REDACTED:x]");
    let mut other = "untouched".to_string();
    redact(&mut other, 1, &spans);
    assert_eq!(other, "untouched");
}

#[test]
fn cache_keys_separate_guardrail_direction_and_texts() {
    let k = Cache::key("g", "input", &["ab", "c"]);
    assert_eq!(k, Cache::key("g", "input", &["ab", "c"]));
    assert_ne!(k, Cache::key("g", "input", &["a", "bc"]));
    assert_ne!(k, Cache::key("g", "output", &["ab", "c"]));
    assert_ne!(k, Cache::key("h", "input", &["ab", "c"]));
}

#[test]
fn webhook_config_errors_name_the_key() {
    let err = |yaml: &str| {
        let raw: Vec<RawGuardrail> = serde_yaml::from_str(yaml).expect("yaml");
        compile(raw).expect_err("invalid").to_string()
    };
    for (yaml, want) in [
        (
            "- {name: w, type: webhook, action: block}",
            "guardrails[0].url: a webhook guardrail needs a url",
        ),
        (
            "- {name: w, type: webhook, action: block, url: ftp://x/}",
            "guardrails[0].url: must start with http:// or https://",
        ),
        (
            "- {name: w, type: webhook, action: block, url: 'http://u:p@x/'}",
            "guardrails[0].url: must not carry credentials",
        ),
        (
            "- {name: w, type: webhook, action: redact, url: 'http://x/'}",
            "guardrails[0].action: unknown action \"redact\" for a webhook guardrail",
        ),
        (
            "- {name: w, type: webhook, action: block, url: 'http://x/', on_error: maybe}",
            "guardrails[0].on_error: unknown value \"maybe\"",
        ),
        (
            "- {name: w, type: webhook, action: block, url: 'http://x/', timeout: 0s}",
            "guardrails[0].timeout: must be more than 0",
        ),
        (
            "- {name: w, type: webhook, action: block, url: 'http://x/', cache_ttl: soon}",
            "guardrails[0].cache_ttl: invalid duration",
        ),
        (
            "- {name: w, type: webhook, action: block, url: 'http://x/', window: 1}",
            "guardrails[0].window: must be between 16",
        ),
        (
            "- {name: w, type: webhook, action: block, url: 'http://x/', headers: {host: y}}",
            "guardrails[0].headers.host: is set by sluice",
        ),
        (
            "- {name: s, type: secrets, action: block, url: 'http://x/'}",
            "guardrails[0].url: only webhook guardrails take url",
        ),
    ] {
        let got = err(yaml);
        assert!(got.contains(want), "{yaml}: {got}");
    }
}

#[test]
fn a_webhook_guardrail_applies_both_ways_with_no_detectors() {
    let p = policy("- {name: w, type: webhook, action: block, url: 'http://127.0.0.1:9/check'}");
    assert!(p.has_input() && p.has_input_webhooks());
    assert!(p.has_output());
    assert_eq!(p.output_webhooks().len(), 1);
    // Its synchronous part scans nothing: the text passes unchanged.
    assert_eq!(
        p.check_output_text("anything at all").text,
        "anything at all"
    );
    let w = p.stream_window().expect("output webhooks");
    assert!(!w.due(true));
}
