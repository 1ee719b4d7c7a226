//! `sluice check`, `sluice run` with bad configs, and the shipped example configs.

mod common;

use std::process::Command;

use common::{bin, standard_config};

/// Environment for the shipped configs (obviously fake values).
const ENV: &[(&str, &str)] = &[
    ("SLUICE_DEMO_KEY", "sk-test-demo"),
    ("SLUICE_ADMIN_TOKEN", "test-admin-token"),
    ("SLUICE_VIEWER_TOKEN", "test-viewer-token"),
    ("SLUICE_OPERATOR_TOKEN", "test-operator-token"),
    ("TEAM_A_KEY", "sk-test-team-a"),
    ("OPENAI_API_KEY", "sk-test-openai"),
    ("OPENAI_ORG_ID", "org-test"),
    ("GROQ_API_KEY", "gsk-test"),
    ("XAI_API_KEY", "xai-test"),
    ("ANTHROPIC_API_KEY", "sk-ant-test"),
    ("GEMINI_API_KEY", "gemini-test"),
    ("OTLP_AUTH", "Bearer otlp-test"),
    ("CLASSIFIER_TOKEN", "classifier-test"),
];

fn check(path: &std::path::Path, env: &[(&str, &str)]) -> (bool, String) {
    check_with(path, env, &[])
}

/// `sluice check` with `args` before `-c`, in an environment of `env` alone.
fn check_with(path: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let out = Command::new(bin())
        .arg("check")
        .args(args)
        .arg("-c")
        .arg(path)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn every_shipped_config_passes_check() {
    let mut n = 0;
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/conf")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let (ok, out) = check(&path, ENV);
            assert!(ok, "{}: {out}", path.display());
            assert!(out.contains("OK"), "{out}");
            let (ok, out) = check_with(&path, ENV, &["--resolve-secrets"]);
            assert!(ok, "{} with its secrets read: {out}", path.display());
            n += 1;
        }
    }
    assert!(n >= 2, "conf/ holds sluice.yaml and full.yaml");
}

#[test]
fn broken_configs_fail_with_the_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let base = "listen: 127.0.0.1:8080\nkeys:\n  - { name: a, key: ${TEAM_A_KEY} }\n\
                providers:\n  p: { kind: openai, api_key: ${OPENAI_API_KEY} }\n\
                models:\n  claude-fast:\n    - { provider: p, model: x }\n";
    let cases = [
        (
            base.replace(
                "- { provider: p, model: x }",
                "- { provider: p, model: x }\n    - { provider: gemni, model: y }",
            ),
            "models.claude-fast[1].provider: unknown provider \"gemni\"",
        ),
        (base.replace("listen:", "lisen:"), "unknown field `lisen`"),
        (
            base.replace("${OPENAI_API_KEY}", "${SLUICE_UNSET_VAR_FOR_TEST}"),
            "providers.p.api_key: environment variable SLUICE_UNSET_VAR_FOR_TEST is not set",
        ),
        (
            base.replace("${OPENAI_API_KEY}", "sk-literal-secret-value"),
            "providers.p.api_key: inline secrets are refused",
        ),
        (
            base.replace("kind: openai", "kind: openia"),
            "providers.p.kind: unknown kind \"openia\"",
        ),
        (
            base.replace("127.0.0.1:8080", "127.0.0.1:99999"),
            "listen: invalid address",
        ),
        (
            format!(
                "{base}admin:\n  tokens:\n    - {{ name: ops, token: ${{SLUICE_OPERATOR_TOKEN}}, role: operator }}\n\
                 \x20   - {{ name: root, token: ${{SLUICE_ADMIN_TOKEN}}, role: root }}\n"
            ),
            "admin.tokens[1].role: unknown role \"root\" (viewer, operator or admin)",
        ),
        (
            format!("{base}admin:\n  token: ${{SLUICE_ADMIN_TOKEN}}\n  allow: [127.0.0.0/8, 10.0.0.0/33]\n"),
            "admin.allow[1]: invalid network \"10.0.0.0/33\"",
        ),
        (
            format!(
                "{base}admin:\n  token: ${{SLUICE_ADMIN_TOKEN}}\n  tokens:\n\
                 \x20   - {{ name: viewer, token: ${{SLUICE_ADMIN_TOKEN}}, role: viewer }}\n"
            ),
            "admin.tokens[0].token: is the same token as \"admin\"'s",
        ),
    ];
    for (i, (yaml, expected)) in cases.iter().enumerate() {
        assert_ne!(yaml, base, "case {i} did not change the config");
        let path = dir.path().join(format!("bad{i}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        let (ok, out) = check_with(&path, ENV, &["--resolve-secrets"]);
        assert!(!ok, "case {i} should fail: {out}");
        assert!(
            out.contains(expected),
            "case {i}: expected {expected:?} in {out:?}"
        );
        assert!(
            !out.contains("sk-literal-secret-value"),
            "secret echoed: {out}"
        );
        assert!(!out.contains("sk-test-openai"), "secret echoed: {out}");
        assert!(!out.contains("test-admin-token"), "secret echoed: {out}");
    }
    let (ok, out) = check(&dir.path().join("missing.yaml"), ENV);
    assert!(!ok);
    assert!(out.contains("cannot read config file"), "{out}");
}

/// Runs `sluice run` on `yaml`; expects it to refuse to start. Returns its stderr.
fn run_refused(yaml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluice.yaml");
    std::fs::write(&path, yaml).unwrap();
    let started = std::time::Instant::now();
    let out = Command::new(bin())
        .args(["run", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn run_refuses_a_bad_config_before_starting() {
    let err = run_refused("listen: 127.0.0.1:1\nkeys: []\n");
    assert!(
        err.contains("keys: at least one gateway key is required"),
        "{err}"
    );
}

#[test]
fn version_flag() {
    let out = Command::new(bin()).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("sluice {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn run_fails_fast_when_the_address_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = run_refused(&format!(
        "listen: 127.0.0.1:{port}\nadmin: {{ listen: 127.0.0.1:{} }}\nallow_inline_secrets: true\n\
         keys: [{{ name: a, key: sk-test-a }}]\n",
        common::free_port()
    ));
    assert!(
        err.contains(&format!("listen: cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn weak_admin_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    for (token, ok) in [
        ("short", false),
        ("aaaaaaaaaaaaaaaaaaaaaaaa", false),
        ("test-admin-token", true),
    ] {
        std::fs::write(
            &path,
            format!(
                "listen: 127.0.0.1:1\nallow_inline_secrets: true\nadmin:\n  listen: 127.0.0.1:2\n  token: {token}\n{}",
                standard_config("http://127.0.0.1:3")
            ),
        )
        .unwrap();
        let (passed, text) = check(&path, &[]);
        assert_eq!(passed, ok, "{token}: {text}");
        if !ok {
            assert!(
                text.contains("admin.token") && !text.contains(token),
                "{text}"
            );
        }
    }
}

#[test]
fn check_warns_about_models_without_a_price() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluice.yaml");
    std::fs::write(
        &path,
        "listen: 127.0.0.1:8080\nkeys:\n  - { name: a, key: ${TEAM_A_KEY} }\n\
         providers:\n  p: { kind: openai, api_key: ${OPENAI_API_KEY} }\n  \
         local: { kind: ollama }\n\
         models:\n  listed:\n    - { provider: p, model: gpt-4o-mini-2024-07-18 }\n  \
         tuned:\n    - { provider: p, model: ft:gpt-4o-mini:acme }\n  \
         mine:\n    - { provider: local, model: llama3.2 }\n",
    )
    .unwrap();
    let (ok, out) = check(&path, ENV);
    assert!(ok, "a missing price is a warning, not an error: {out}");
    let warning = out
        .lines()
        .find(|l| l.starts_with("warning: no price for"))
        .unwrap_or_else(|| panic!("no warning: {out}"));
    assert!(warning.contains("tuned"), "{warning}");
    assert!(
        !warning.contains("listed") && !warning.contains("mine"),
        "{warning}"
    );
}

/// Lines of `out` that report a config error of `path`.
fn error_lines<'a>(out: &'a str, path: &std::path::Path) -> Vec<&'a str> {
    let prefix = format!("{}: config error: ", path.display());
    out.lines().filter(|l| l.starts_with(&prefix)).collect()
}

#[test]
fn check_reports_every_error_with_its_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluice.yaml");
    std::fs::write(
        &path,
        "listen: 127.0.0.1:99999\n\
         keys:\n  - { name: a, key_sha256: abc }\n  - { name: b, key: ${TEAM_B_KEY}, models: [\"\"] }\n\
         providers:\n  p: { kind: openia, api_key: ${OPENAI_API_KEY} }\n\
         models:\n  m:\n    - { provider: p }\n  n:\n    - { provider: q, weight: 0 }\n\
         retry: { max_attempts: 0 }\n\
         server: { threds: 2 }\n\
         health: { cooldown: soon }\n\
         pricing:\n  nope: { input: 1, output: 1 }\n",
    )
    .unwrap();
    let (ok, out) = check(&path, &[]);
    assert!(!ok, "{out}");
    let expected = [
        "listen: invalid address",
        "keys[0].key_sha256: must be 64 hexadecimal characters",
        "keys[1].models[0]: must not be empty",
        "providers.p.kind: unknown kind \"openia\"",
        "models.n[0].provider: unknown provider \"q\"",
        "retry.max_attempts: must be between 1 and 10",
        "server.threds: unknown field `threds`",
        "health.cooldown: ",
        "pricing.nope: unknown model \"nope\"",
    ];
    let lines = error_lines(&out, &path);
    for e in expected {
        assert!(lines.iter().any(|l| l.contains(e)), "{e:?} not in {out}");
    }
    assert_eq!(lines.len(), expected.len(), "one line per error: {out}");
    assert!(
        out.lines()
            .any(|l| l == format!("{} errors", expected.len())),
        "summary: {out}"
    );
    // `p` failed on its own: the model on it is not also reported.
    assert!(!out.contains("models.m"), "{out}");
}

#[test]
fn full_config_checks_without_its_secrets_and_names_each_one_when_resolving() {
    let full = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/conf/full.yaml"));
    let home = std::env::var("HOME").unwrap_or_else(|_| "/".into());
    let path_var = std::env::var("PATH").unwrap_or_default();
    let env = [("PATH", path_var.as_str()), ("HOME", home.as_str())];
    let (ok, out) = check_with(full, &env, &[]);
    assert!(
        ok,
        "README's `sluice check -c conf/full.yaml` needs no secret: {out}"
    );
    assert!(out.contains("OK ("), "{out}");

    let (ok, out) = check_with(full, &env, &["--resolve-secrets"]);
    assert!(!ok, "{out}");
    let missing = [
        ("admin.token", "SLUICE_ADMIN_TOKEN"),
        ("keys[0].key", "TEAM_A_KEY"),
        ("providers.openai.api_key", "OPENAI_API_KEY"),
        (
            "providers.openai.headers.OpenAI-Organization",
            "OPENAI_ORG_ID",
        ),
        ("providers.groq.api_key", "GROQ_API_KEY"),
        ("providers.xai.api_key", "XAI_API_KEY"),
        ("providers.claude.api_key", "ANTHROPIC_API_KEY"),
        ("providers.gemini.api_key", "GEMINI_API_KEY"),
        ("tracing.headers.authorization", "OTLP_AUTH"),
        ("guardrails[4].headers.authorization", "CLASSIFIER_TOKEN"),
    ];
    let lines = error_lines(&out, full);
    for (key, var) in missing {
        let line = format!("{key}: environment variable {var} is not set");
        assert!(
            lines.iter().any(|l| l.ends_with(&line)),
            "{line:?} not in {out}"
        );
    }
    assert_eq!(lines.len(), missing.len(), "{out}");
    assert!(out.contains(&format!("{} errors", missing.len())), "{out}");
}

#[test]
fn bad_secret_references_are_reported_without_reading_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluice.yaml");
    std::fs::write(
        &path,
        "listen: 127.0.0.1:8080\nkeys:\n  - { name: a, key: \"${TEAM-A KEY}\" }\n  - { name: b, key: \"file:\" }\n\
         providers:\n  p: { kind: openai, api_key: \"file:${CREDS-DIR}/openai\" }\n\
         models:\n  m:\n    - { provider: p }\n",
    )
    .unwrap();
    let (ok, out) = check(&path, &[]);
    assert!(!ok, "{out}");
    let lines = error_lines(&out, &path);
    for e in [
        "keys[0].key: invalid environment variable name \"TEAM-A KEY\"",
        "keys[1].key: file: needs a path",
        "providers.p.api_key: invalid environment variable name \"CREDS-DIR\"",
    ] {
        assert!(lines.iter().any(|l| l.ends_with(e)), "{e:?} not in {out}");
    }
    assert_eq!(lines.len(), 3, "{out}");
    assert!(out.contains("3 errors"), "{out}");
}
