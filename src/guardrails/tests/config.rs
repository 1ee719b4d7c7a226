use super::super::config::compile;
use super::super::{Guardrails, RawGuardrail};

fn err(yaml: &str) -> String {
    let raw: Vec<RawGuardrail> = serde_yaml::from_str(yaml).expect("yaml");
    compile(raw).expect_err("must fail").to_string()
}

fn ok(yaml: &str) -> Guardrails {
    let raw: Vec<RawGuardrail> = serde_yaml::from_str(yaml).expect("yaml");
    compile(raw).expect("compiles")
}

#[test]
fn errors_name_the_key_path() {
    let cases = [
        ("- {name: a, type: nope, action: block}", "guardrails[0].type: unknown type \"nope\""),
        ("- {name: a, type: pii, action: maybe}", "guardrails[0].action: unknown action \"maybe\""),
        ("- {name: a, type: regex, action: block}", "guardrails[0].patterns: a regex guardrail needs at least one pattern"),
        ("- {name: a, type: regex, patterns: [], action: block}", "guardrails[0].patterns: a regex guardrail needs"),
        ("- {name: a, type: pii, action: log}\n- {name: b, type: pii, action: log}\n- {name: c, type: regex, patterns: ['ok', '(unclosed'], action: log}", "guardrails[2].patterns[1]: invalid regex:"),
        ("- {name: a, type: regex, patterns: ['a*'], action: log}", "guardrails[0].patterns[0]: pattern matches the empty string"),
        ("- {name: a, type: regex, patterns: ['a{1000}{1000}'], action: log}", "guardrails[0].patterns[0]: invalid regex:"),
        ("- {name: a, type: pii, action: log}\n- {name: a, type: secrets, action: log}", "guardrails[1].name: duplicate guardrail name \"a\""),
        ("- {name: a, type: pii, action: log, apply_to: [input, outptu]}", "guardrails[0].apply_to[1]: unknown value \"outptu\""),
        ("- {name: a, type: pii, action: log, apply_to: []}", "guardrails[0].apply_to: must name"),
        ("- {name: a, type: pii, action: log, fields: ['$.a[?(@.b]']}", "guardrails[0].fields[0]: invalid JSONPath"),
        ("- {name: a, type: pii, action: log, fields: ['messages']}", "guardrails[0].fields[0]: invalid JSONPath \"messages\": must start with $"),
        ("- {name: a, type: pii, action: log, apply_to: [output], fields: ['$.a']}", "guardrails[0].fields: fields select what is inspected on input"),
        ("- {name: a, type: pii, action: log, patterns: ['x']}", "guardrails[0].patterns: only regex guardrails"),
        ("- {name: a, type: regex, patterns: ['x'], max_match_len: 0, action: log}", "guardrails[0].max_match_len: must be between"),
        ("- {name: 'a b', type: pii, action: log}", "guardrails[0].name: must be non-empty"),
        ("- {name: a, type: pii, action: log, phone_regions: [FR, XX]}", "guardrails[0].phone_regions[1]: unknown region \"XX\""),
        ("- {name: a, type: secrets, action: log, phone_regions: [FR]}", "guardrails[0].phone_regions: only pii guardrails take phone_regions"),
    ];
    for (yaml, want) in cases {
        let got = err(yaml);
        assert!(got.starts_with(want), "{yaml}\n got: {got}\nwant: {want}");
    }
}

#[test]
fn unknown_keys_are_refused() {
    let r: Result<Vec<RawGuardrail>, _> =
        serde_yaml::from_str("- {name: a, type: pii, action: log, aply_to: [input]}");
    assert!(r.is_err());
}

#[test]
fn policy_resolution() {
    let g = ok("- {name: a, type: pii, action: log}\n- {name: b, type: secrets, action: redact, apply_to: [input]}");
    assert_eq!(g.names().collect::<Vec<_>>(), ["a", "b"]);
    let p = g
        .policy(&["b".into()], "keys[3].guardrails")
        .expect("known");
    assert!(p.has_input() && !p.has_output());
    let e = g
        .policy(&["b".into(), "zz".into()], "keys[3].guardrails")
        .expect_err("unknown");
    assert_eq!(
        e.to_string(),
        "keys[3].guardrails[1]: unknown guardrail \"zz\" (known guardrails: a, b)"
    );
    let e = g
        .policy(&["a".into(), "a".into()], "default_guardrails")
        .expect_err("twice");
    assert_eq!(
        e.to_string(),
        "default_guardrails[1]: guardrail \"a\" is listed twice"
    );
    let empty = g.policy(&[], "default_guardrails").expect("empty list");
    assert!(!empty.has_input() && empty.output_scanner().is_none());
}

#[test]
fn unicode_word_boundaries_are_supported() {
    let g = ok(r"- {name: w, type: regex, patterns: ['\bfalcon\b'], action: redact}");
    let p = g.policy(&["w".into()], "p").expect("policy");
    assert_eq!(p.check_output_text("é falcon é").text, "é [REDACTED:w] é");
    assert_eq!(p.check_output_text("éfalconé").text, "éfalconé");
    let mut sc = p.output_scanner().expect("scanner");
    let c = super::super::Channel::Content { choice: 0 };
    let mut out = String::new();
    for piece in ["é fal", "con", " é"] {
        if let super::super::Step::Release(s) = sc.push(c, piece) {
            out += &s;
        }
    }
    if let super::super::Step::Release(s) = sc.finish(c) {
        out += &s;
    }
    assert_eq!(out, "é [REDACTED:w] é");
}
