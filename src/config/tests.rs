use super::*;
use crate::pipeline::keyring::KeyRing;

const BASE: &str = r#"
listen: 127.0.0.1:8080
allow_inline_secrets: true
keys:
  - { name: team-a, key: sk-gw-test-a, models: ["gpt-*"] }
providers:
  openai: { kind: openai, api_key: sk-fake-provider-key }
  local: { kind: ollama }
models:
  gpt-4o-mini:
    - { provider: openai, model: gpt-4o-mini }
  llama:
    - { provider: local, model: llama3.2, weight: 2 }
"#;

/// The first error of a refused config.
fn err(yaml: &str) -> ConfigError {
    parse(yaml)
        .expect_err("config should be refused")
        .first()
        .clone()
}

#[test]
fn valid_config_with_defaults() {
    let c = parse(BASE).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9091");
    assert_eq!(c.limits.max_body_bytes, 8 << 20);
    let openai = &c.providers["openai"];
    assert_eq!(openai.base.host, "api.openai.com");
    assert!(openai.base.tls);
    assert_eq!(openai.base.port, 443);
    assert_eq!(openai.api_root, "/v1");
    let local = &c.providers["local"];
    assert_eq!(
        local.api_root, "",
        "ollama's native API is at the server root"
    );
    assert_eq!(local.base.port, 11434);
    assert_eq!(c.models["llama"].deployments[0].weight, 2);
    assert!(c.keys[0].allows("gpt-4o-mini"));
    assert!(!c.keys[0].allows("llama"));
}

#[test]
fn unknown_provider_names_the_key_path() {
    let yaml = BASE.replace(
        "- { provider: local, model: llama3.2, weight: 2 }",
        "- { provider: local, model: llama3.2 }\n    - { provider: gemni, model: x }",
    );
    let e = err(&yaml);
    assert_eq!(e.path, "models.llama[1].provider");
    assert!(e.message.contains("unknown provider \"gemni\""), "{e}");
}

#[test]
fn unknown_keys_are_errors_with_path_and_line() {
    let yaml = BASE.replace("weight: 2", "wieght: 2");
    let e = err(&yaml);
    assert_eq!(e.path, "models.llama[0].wieght");
    assert!(e.message.contains("unknown field `wieght`"), "{e}");
    assert!(e.message.contains("line"), "{e}");

    let e = err(&format!("{BASE}\nlistn: 1\n"));
    assert!(e.message.contains("unknown field `listn`"), "{e}");
}

#[test]
fn inline_secrets_are_refused_without_the_test_flag() {
    let yaml = BASE.replace("allow_inline_secrets: true\n", "");
    let e = err(&yaml);
    assert_eq!(e.path, "keys[0].key");
    assert!(e.message.contains("inline secrets are refused"), "{e}");
    assert!(
        !e.to_string().contains("sk-gw-test-a"),
        "never print the value"
    );
}

#[test]
fn env_and_file_secrets() {
    std::env::set_var("SLUICE_TEST_CFG_KEY", "sk-from-env-value");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("provider-key");
    std::fs::write(&file, "sk-from-file-value\n").unwrap();
    let yaml = BASE
        .replace("allow_inline_secrets: true\n", "")
        .replace("sk-gw-test-a", "${SLUICE_TEST_CFG_KEY}")
        .replace("sk-fake-provider-key", &format!("file:{}", file.display()));
    let c = parse(&yaml).unwrap();
    assert!(KeyRing::new(&c, &[])
        .find("sk-from-env-value")
        .key()
        .is_some());
    assert_eq!(
        c.providers["openai"].api_key.as_ref().unwrap().expose(),
        "sk-from-file-value"
    );
}

#[test]
fn missing_env_or_file_names_the_key_not_the_value() {
    let yaml = BASE.replace("sk-fake-provider-key", "${SLUICE_TEST_SURELY_UNSET_VAR}");
    let e = err(&yaml);
    assert_eq!(e.path, "providers.openai.api_key");
    assert!(
        e.message
            .contains("SLUICE_TEST_SURELY_UNSET_VAR is not set"),
        "{e}"
    );

    let yaml = BASE.replace("sk-fake-provider-key", "file:/nonexistent/sluice/key");
    let e = err(&yaml);
    assert_eq!(e.path, "providers.openai.api_key");
    assert!(e.message.contains("cannot read secret file"), "{e}");
}

#[test]
fn key_sha256_lookup() {
    let hash = hex::encode(Sha256::digest(b"sk-hashed-gateway-key"));
    let yaml = BASE.replace("key: sk-gw-test-a", &format!("key_sha256: {hash}"));
    let c = parse(&yaml).unwrap();
    assert_eq!(
        KeyRing::new(&c, &[])
            .find("sk-hashed-gateway-key")
            .key()
            .unwrap()
            .name,
        "team-a"
    );
    assert!(KeyRing::new(&c, &[])
        .find("sk-hashed-gateway-kez")
        .key()
        .is_none());
    assert!(KeyRing::new(&c, &[]).find("").key().is_none());

    let e = err(&BASE.replace("key: sk-gw-test-a", "key_sha256: abc"));
    assert_eq!(e.path, "keys[0].key_sha256");
}

#[test]
fn other_validation_errors() {
    let cases: &[(&str, &str, &str)] = &[
        ("listen: 127.0.0.1:8080", "listen: localhost", "listen"),
        ("kind: openai,", "kind: opneai,", "providers.openai.kind"),
        ("weight: 2", "weight: 0", "models.llama[0].weight"),
        ("models: [\"gpt-*\"]", "models: [\"\"]", "keys[0].models[0]"),
        (
            "openai: { kind: openai, api_key: sk-fake-provider-key }",
            "openai: { kind: openai }",
            "providers.openai.api_key",
        ),
        (
            "local: { kind: ollama }",
            "local: { kind: openai_compatible }",
            "providers.local.base_url",
        ),
        (
            "local: { kind: ollama }",
            "local: { kind: ollama, base_url: \"ftp://x\" }",
            "providers.local.base_url",
        ),
        (
            "local: { kind: ollama }",
            "local: { kind: ollama, base_url: \"http://127.0.0.1:11434/v1\" }",
            "providers.local.base_url",
        ),
        (
            "local: { kind: ollama }",
            "local: { kind: ollama, headers: { authorization: x } }",
            "providers.local.headers.authorization",
        ),
    ];
    for (from, to, path) in cases {
        let yaml = BASE.replace(from, to);
        assert_ne!(yaml, BASE, "replacement {from:?} did not apply");
        let e = err(&yaml);
        assert_eq!(&e.path, path, "{to}: {e}");
    }
    let e = err(&format!("{BASE}admin: {{ listen: 0.0.0.0:9091 }}\n"));
    assert_eq!(e.path, "admin.listen");
    let e = err(&BASE.replace(
        "keys:\n  - { name: team-a, key: sk-gw-test-a, models: [\"gpt-*\"] }",
        "keys: []",
    ));
    assert_eq!(e.path, "keys");
    let e = err("listen: [1, 2]");
    assert_eq!(e.path, "listen");
    let e = err(": : :");
    assert!(!e.message.is_empty());
}

#[test]
fn globs() {
    assert!(glob_match("*", "anything"));
    assert!(glob_match("gpt-*", "gpt-4o"));
    assert!(!glob_match("gpt-*", "claude"));
    assert!(glob_match("claude-?-haiku", "claude-3-haiku"));
    assert!(glob_match("*-mini", "gpt-4o-mini"));
    assert!(!glob_match("*-mini", "gpt-4o-mini-x"));
    assert!(glob_match("a*b*c", "aXXbYYc"));
    assert!(glob_match("exact", "exact"));
    assert!(!glob_match("exact", "exactly"));
    // `?` is one character, however many bytes it takes; `*` any run of them.
    assert!(glob_match("modèle-?", "modèle-é"));
    assert!(glob_match("m?dèle-*", "médèle-ü"));
    assert!(!glob_match("modèle-?", "modèle-éé"));
    assert!(glob_match("*è*", "modèle"));
    assert!(!glob_match("*é*", "modèle"));
    assert!(glob_match("gpt-?o", "gpt-4o"));
    assert!(!glob_match("gpt-?o", "gpt-4xo"));
}

#[test]
fn env_refs_in_flow_mappings_parse_as_documented() {
    std::env::set_var("SLUICE_TEST_FLOW_KEY", "sk-flow-value");
    std::env::set_var("SLUICE_TEST_CRED_DIR", "/nonexistent-cred-dir");
    let text = "a: { kind: openai, api_key: ${SLUICE_TEST_FLOW_KEY} }\n\
                b: { api_key: file:${SLUICE_TEST_CRED_DIR}/anthropic }\n\
                c: ${X} # comment ${Y}\n\
                d: \"${Q}\"\n\
                e: 'it''s ${Q}'\n\
                f: [${A}, ${B}]\n";
    let quoted = quote_env_refs(text);
    assert_eq!(
        quoted,
        "a: { kind: openai, api_key: \"${SLUICE_TEST_FLOW_KEY}\" }\n\
         b: { api_key: \"file:${SLUICE_TEST_CRED_DIR}/anthropic\" }\n\
         c: \"${X}\" # comment ${Y}\n\
         d: \"${Q}\"\n\
         e: 'it''s ${Q}'\n\
         f: [\"${A}\", \"${B}\"]\n"
    );
    let yaml = BASE.replace("sk-fake-provider-key", "${SLUICE_TEST_FLOW_KEY}");
    let c = parse(&yaml).unwrap();
    assert_eq!(
        c.providers["openai"].api_key.as_ref().unwrap().expose(),
        "sk-flow-value"
    );
}

#[test]
fn prices_come_from_pricing_else_the_bundled_table_per_deployment() {
    let yaml = format!(
        "{BASE}  mixed:\n    - {{ provider: openai, model: gpt-4o-2024-08-06 }}\n    \
         - {{ provider: openai, model: gpt-4o-mini-2024-07-18 }}\n  tuned:\n    \
         - {{ provider: openai, model: ft:my-model }}\n  priced:\n    \
         - {{ provider: openai, model: gpt-4o }}\n\
         pricing:\n  priced: {{ input: 1, output: 2, cached_input: 0.5 }}\n"
    );
    let c = parse(&yaml).unwrap();
    let price = |m: &str, up: Option<&str>| {
        c.price_of(Some(m), up.map(|_| "openai"), up)
            .map(|p| (p.input, p.output))
    };
    // The table, by the model that answered; the highest of the deployments before.
    assert_eq!(
        price("gpt-4o-mini", Some("gpt-4o-mini")),
        Some((0.15, 0.60))
    );
    assert_eq!(
        price("mixed", Some("gpt-4o-mini-2024-07-18")),
        Some((0.15, 0.60))
    );
    assert_eq!(price("mixed", None), Some((2.50, 10.00)));
    // `pricing:` wins for every deployment; Ollama is free; an unknown model has none.
    assert_eq!(price("priced", Some("gpt-4o")), Some((1.0, 2.0)));
    assert_eq!(
        c.price_of(Some("llama"), Some("local"), Some("llama3.2")),
        Some(crate::limits::Price::FREE)
    );
    assert_eq!(price("tuned", Some("ft:my-model")), None);
    let models: Vec<String> = c.models.keys().cloned().collect();
    assert_eq!(c.rate_limits.without_price(&models), vec!["tuned"]);
    // Cached prompt tokens at their own price; reasoning reported beside the completion.
    let p = c.price_of(Some("priced"), None, None).unwrap();
    let u = crate::core::Usage {
        prompt_tokens: 1_000_000,
        cached_tokens: 500_000,
        completion_tokens: 1_000_000,
        reasoning_tokens: 1_000_000,
        total_tokens: 3_000_000,
    };
    assert_eq!(p.cost(&crate::limits::Usage::of(&u)), 0.5 + 0.25 + 4.0);
}

/// Every error of a refused config, as `path: message` lines.
fn all_errors(yaml: &str, options: &LoadOptions) -> Vec<String> {
    let errors = parse_with(yaml, options).expect_err("config should be refused");
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.to_string(), lines.join("\n"), "one error per line");
    assert_eq!(errors.len(), lines.len());
    assert_eq!(errors.first().to_string(), lines[0]);
    lines
}

fn has(lines: &[String], path: &str, message: &str) -> bool {
    lines
        .iter()
        .any(|l| l.starts_with(&format!("{path}: ")) && l.contains(message))
}

#[test]
fn every_section_and_every_bad_item_is_reported() {
    let yaml = BASE
        .replace("listen: 127.0.0.1:8080", "listen: nowhere")
        .replace(
            "models: [\"gpt-*\"] }",
            "models: [\"\"] }\n  - { name: team-a, key: sk-gw-test-b }",
        )
        .replace("kind: openai,", "kind: opneai,")
        .replace(
            "local: { kind: ollama }",
            "local: { kind: ollama, http2: true }",
        )
        .replace("weight: 2", "weight: 0")
        + "retry: { max_attempts: 0 }\nserver: { threds: 2 }\ntimeouts: { connect: [1] }\n";
    let lines = all_errors(&yaml, &LoadOptions::default());
    let expected = [
        ("server.threds", "unknown field `threds`"),
        ("timeouts.connect", ""),
        ("listen", "invalid address"),
        ("keys[0].models[0]", "must not be empty"),
        ("keys[1].name", "duplicate key name"),
        ("providers.local.http2", "needs an https:// base_url"),
        ("providers.openai.kind", "unknown kind"),
        ("models.llama[0].weight", "must be at least 1"),
        ("retry.max_attempts", "between 1 and 10"),
    ];
    for (path, message) in expected {
        assert!(
            has(&lines, path, message),
            "{path}: {message} not in {lines:#?}"
        );
    }
    assert_eq!(lines.len(), expected.len(), "{lines:#?}");
    // The model on the failed provider `openai` is not reported as well.
    assert!(
        !lines.iter().any(|l| l.starts_with("models.gpt-4o-mini")),
        "{lines:#?}"
    );
}

#[test]
fn dependent_checks_are_skipped_when_what_they_depend_on_is_unreadable() {
    // providers unreadable: no "unknown provider" for any deployment.
    let yaml = BASE.replace(
        "  openai: { kind: openai, api_key: sk-fake-provider-key }\n  local: { kind: ollama }\n",
        "  - openai\n",
    );
    let lines = all_errors(&yaml, &LoadOptions::default());
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].starts_with("providers: "), "{lines:#?}");

    // models unreadable: limits and prices are not checked against model names.
    let yaml = BASE.replace("weight: 2", "weight: heavy")
        + "pricing:\n  nope: { input: 1, output: 1 }\n  bad: { input: -1, output: 1 }\n";
    let lines = all_errors(&yaml, &LoadOptions::default());
    assert!(
        has(&lines, "models.llama[0].weight", "invalid type"),
        "{lines:#?}"
    );
    assert!(has(&lines, "pricing.bad.input", "0 or more"), "{lines:#?}");
    assert_eq!(lines.len(), 2, "{lines:#?}");

    // One guardrail fails: the key naming it is not reported, one naming nothing known is.
    let yaml = BASE.replace(
        "models: [\"gpt-*\"] }",
        "guardrails: [g1] }\n  - { name: b, key: sk-gw-test-b, guardrails: [g9] }",
    ) + "guardrails:\n  - { name: g1, type: pii, action: explode }\n  \
         - { name: g2, type: pii, action: explode }\n";
    let lines = all_errors(&yaml, &LoadOptions::default());
    assert!(
        has(&lines, "guardrails[0].action", "unknown action"),
        "{lines:#?}"
    );
    assert!(
        has(&lines, "guardrails[1].action", "unknown action"),
        "{lines:#?}"
    );
    assert!(
        has(&lines, "keys[1].guardrails[0]", "unknown guardrail \"g9\""),
        "{lines:#?}"
    );
    assert_eq!(lines.len(), 3, "{lines:#?}");
}

#[test]
fn a_syntax_error_is_one_error_with_its_line() {
    let lines = all_errors("listen: [1\nkeys: {\n", &LoadOptions::default());
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("line"), "{lines:#?}");
    let lines = all_errors(
        &format!("{BASE}listn: 1\nretri: {{}}\n"),
        &LoadOptions::default(),
    );
    assert!(lines[0].contains("unknown field `listn`"), "{lines:#?}");
    assert!(lines[1].contains("unknown field `retri`"), "{lines:#?}");
}

#[test]
fn references_are_checked_for_syntax_only_unless_resolved() {
    let check = LoadOptions {
        resolve_secrets: false,
    };
    let yaml = BASE
        .replace("allow_inline_secrets: true\n", "")
        .replace(
            "key: sk-gw-test-a, models: [\"gpt-*\"] }",
            "key: \"${SLUICE_TEST_UNSET_KEY}\" }\n  - { name: team-b, key: \"${SLUICE_TEST_UNSET_KEY}\" }",
        )
        .replace("sk-fake-provider-key", "file:${SLUICE_TEST_UNSET_DIR}/openai")
        + "admin: { token: \"${SLUICE_TEST_UNSET_TOKEN}\" }\n\
           usage: { store: postgres, url: \"${SLUICE_TEST_UNSET_DB}\" }\n\
           limits: { backend: redis, redis_url: \"file:/nonexistent/redis-url\" }\n";
    let yaml = yaml.replace(
        "providers:",
        "providers:\n  extra: { kind: openai, api_key: sk-fake, headers: { x-team: \"${SLUICE_TEST_UNSET_H}\" } }",
    );
    // Not read: placeholders, and no check that needs a value (token strength, the same key
    // twice, the URLs' form). The literal api_key still needs allow_inline_secrets.
    let lines = all_errors(&yaml, &check);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        has(
            &lines,
            "providers.extra.api_key",
            "inline secrets are refused"
        ),
        "{lines:#?}"
    );
    let c = parse_with(
        &yaml.replace("api_key: sk-fake", "api_key: \"${SLUICE_TEST_UNSET_H}\""),
        &check,
    )
    .unwrap();
    assert!(c.admin.tokens[0].token.is_placeholder());
    assert!(c.providers["openai"]
        .api_key
        .as_ref()
        .unwrap()
        .is_placeholder());
    assert!(c.rate_limits.redis_url.as_ref().unwrap().is_placeholder());

    // Resolved: every missing variable and file, each with its key.
    let lines = all_errors(&yaml, &LoadOptions::default());
    for (path, what) in [
        ("keys[0].key", "SLUICE_TEST_UNSET_KEY is not set"),
        ("keys[1].key", "SLUICE_TEST_UNSET_KEY is not set"),
        ("admin.token", "SLUICE_TEST_UNSET_TOKEN is not set"),
        (
            "providers.openai.api_key",
            "SLUICE_TEST_UNSET_DIR is not set",
        ),
        (
            "providers.extra.headers.x-team",
            "SLUICE_TEST_UNSET_H is not set",
        ),
        ("usage.url", "SLUICE_TEST_UNSET_DB is not set"),
        ("limits.redis_url", "cannot read secret file"),
    ] {
        assert!(has(&lines, path, what), "{path}: {what} not in {lines:#?}");
    }

    // Bad syntax is an error either way.
    for bad in ["\"${BAD-NAME}\"", "\"file:\"", "\"file:${}/x\""] {
        let yaml = BASE.replace("sk-fake-provider-key", bad);
        let lines = all_errors(&yaml, &check);
        assert!(
            lines[0].starts_with("providers.openai.api_key: "),
            "{bad}: {lines:#?}"
        );
    }
}

#[test]
fn tracing_is_validated_with_key_paths_and_secret_headers() {
    assert!(parse(BASE).unwrap().tracing.is_none(), "off by default");
    std::env::set_var("SLUICE_TEST_OTLP_AUTH", "Bearer otlp-test-value");
    let c = parse(&format!(
        "{BASE}tracing:\n  otlp_endpoint: https://collector.internal:4318/otel\n  sample_ratio: 0.25\n  headers: {{ authorization: ${{SLUICE_TEST_OTLP_AUTH}} }}\n"
    ))
    .unwrap();
    let t = c.tracing.unwrap();
    assert!(t.endpoint.tls);
    assert_eq!(t.endpoint.path, "/otel");
    assert_eq!(t.sample_ratio, 0.25);
    assert_eq!(t.service_name, "sluice");
    assert_eq!(t.headers[0].1.expose(), "Bearer otlp-test-value");
    assert!(!format!("{t:?}").contains("otlp-test-value"));
    for (yaml, path) in [
        ("tracing: { sample_ratio: 1.0 }", "tracing.otlp_endpoint"),
        (
            "tracing: { otlp_endpoint: ftp://x }",
            "tracing.otlp_endpoint",
        ),
        (
            "tracing: { otlp_endpoint: http://x, sample_ratio: 1.5 }",
            "tracing.sample_ratio",
        ),
        (
            "tracing: { otlp_endpoint: http://x, timeout: 0s }",
            "tracing.timeout",
        ),
        (
            "tracing: { otlp_endpoint: http://x, service_name: '' }",
            "tracing.service_name",
        ),
        (
            "tracing: { otlp_endpoint: http://x, headers: { 'bad name': v } }",
            "tracing.headers.bad name",
        ),
        (
            "tracing: { otlp_endpoint: http://x, headers: { a: ${SLUICE_TEST_UNSET_OTLP} } }",
            "tracing.headers.a",
        ),
        (
            "tracing: { otlp_endpoint: http://x, samples: 1 }",
            "tracing.samples",
        ),
    ] {
        assert_eq!(err(&format!("{BASE}{yaml}\n")).path, path, "{yaml}");
    }
}
