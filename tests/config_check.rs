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
];

fn check(path: &std::path::Path, env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(bin())
        .args(["check", "-c"])
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
        let (ok, out) = check(&path, ENV);
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
