//! Golden-file tests for the translators, from the files under `tests/fixtures/<provider>/`.
//!
//! Each case is an input file and the expected output next to it:
//! - `NAME.request.json` — the client's OpenAI request → `NAME.request.expected.json`: the path
//!   and body sent to the provider (model `upstream-model`, or the request's
//!   `x-fixture-upstream-model`), or the client error.
//! - `NAME.response.json` — a provider's whole answer → `NAME.response.expected.json`: the
//!   OpenAI answer for model `public-model` and the usage read from it, or the error.
//! - `NAME.stream.txt` — a provider's stream body → `NAME.stream.expected.txt`: the OpenAI SSE
//!   stream (the client asked for usage); when the stream is broken, the error event the
//!   client gets and a `# error: {...}` line. Every stream is also fed split at every byte position and one byte at a time,
//!   and must give the same output.
//! - `NAME.error.json` — `{"status", "body", "retry_after"}` of a provider error →
//!   `NAME.error.expected.json`: the status and OpenAI error body the client gets.
//!
//! Cases whose name starts with `embed` are embeddings requests. `created` timestamps and the
//! ids sluice makes up are normalised before comparing. Run with `SLUICE_BLESS=1` to write
//! the expected files from the current output (then review the diff).

mod golden;

use std::path::Path;

use golden::Normalise;
use serde_json::{json, Value};
use sluice::config::{BaseUrl, Provider, ProviderKind};
use sluice::core::secret::Secret;
use sluice::core::ApiError;
use sluice::providers::Wire;

/// Every registered provider kind has a fixture folder under its config name, but for
/// `openai_compatible`, which is the `openai` wire without quirks.
fn providers() -> impl Iterator<Item = (&'static str, ProviderKind)> {
    ProviderKind::ALL.iter().copied().filter(|(name, kind)| {
        let has_dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
            .is_dir();
        assert!(
            has_dir || *kind == ProviderKind::OpenAiCompatible,
            "provider kind {name} has no tests/fixtures/{name}"
        );
        has_dir
    })
}

fn provider(name: &str, kind: ProviderKind) -> Provider {
    Provider {
        name: name.into(),
        kind,
        base: BaseUrl {
            tls: true,
            host: "provider.test".into(),
            port: 443,
            authority: "provider.test".into(),
            path: String::new(),
        },
        api_root: String::new(),
        api_key: Some(Secret::new("sk-fake-fixture-provider-key")),
        headers: vec![],
        http2: false,
    }
}

fn error_json(e: &ApiError) -> Value {
    json!({"status": e.status, "retry_after": e.retry_after, "body": e.to_json()})
}

const NORMALISE: Normalise = Normalise {
    timestamps: &["created"],
    id_prefixes: &["chatcmpl-"],
};

fn pretty(v: &Value) -> String {
    golden::pretty(v, &NORMALISE)
}

/// A request fixture's key naming the deployment's model (default `upstream-model`); it is
/// removed before translation.
const UPSTREAM_MODEL: &str = "x-fixture-upstream-model";

fn request(wire: Wire, case: &str, input: &str) -> String {
    let body: Value = serde_json::from_str(input).expect("request fixture is JSON");
    let mut body = body
        .as_object()
        .cloned()
        .expect("request fixture is an object");
    let model = match body.remove(UPSTREAM_MODEL) {
        Some(Value::String(m)) => m,
        _ => "upstream-model".into(),
    };
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    let embeddings = case.starts_with("embed");
    let out = match wire.render(&mut body, &model, stream, embeddings) {
        Ok(b) => json!({
            "path": wire.path(embeddings, &model, stream),
            "body": serde_json::from_slice::<Value>(&b).expect("rendered body is JSON"),
        }),
        Err(e) => error_json(&e),
    };
    pretty(&out)
}

fn response(wire: Wire, case: &str, input: &str) -> String {
    let out = match wire.response(
        input.trim_end().as_bytes(),
        "public-model",
        case.starts_with("embed"),
    ) {
        Ok((b, usage)) => json!({
            "body": serde_json::from_slice::<Value>(&b).expect("answer is JSON"),
            "usage": usage.map(|u| u.to_json()),
        }),
        Err(e) => error_json(&e),
    };
    pretty(&out)
}

fn stream(wire: Wire, path: &Path, input: &str) -> String {
    golden::split_invariant(path, input, |pieces| {
        let mut t = wire.stream("public-model", true);
        golden::run_stream(t.as_mut(), pieces, error_json, &NORMALISE)
    })
}

fn error(wire: Wire, p: &Provider, input: &str) -> String {
    let v: Value = serde_json::from_str(input).expect("error fixture is JSON");
    let status = v["status"].as_u64().expect("error fixture has a status") as u16;
    let body = match &v["body"] {
        Value::String(s) => s.clone().into_bytes(),
        other => serde_json::to_vec(other).unwrap(),
    };
    let retry_after = v["retry_after"].as_str().map(str::to_string);
    let e = wire.error(status, &body, &p.name, retry_after);
    let out = pretty(&error_json(&e));
    assert!(
        !out.contains("sk-fake-fixture-provider-key"),
        "an error leaks the provider key"
    );
    out
}

#[test]
fn golden_files() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for (name, kind) in providers() {
        let p = provider(name, kind);
        let wire = Wire::of(kind);
        let (n, kinds_seen) = golden::check_dir(
            name,
            &NORMALISE,
            &mut failures,
            |path, case, what, input| match what {
                "request" => request(wire, case, input),
                "response" => response(wire, case, input),
                "stream" => stream(wire, path, input),
                "error" => error(wire, &p, input),
                _ => panic!("{}: unknown fixture kind {what:?}", path.display()),
            },
        );
        checked += n;
        for what in ["request", "response", "error"] {
            assert!(
                kinds_seen.contains(what),
                "tests/fixtures/{name} has no {what} fixture"
            );
        }
        if !matches!(kind, ProviderKind::Xai) {
            assert!(
                kinds_seen.contains("stream"),
                "tests/fixtures/{name} has no stream fixture"
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(checked >= 30, "only {checked} fixtures found");
}

#[test]
fn normalise_only_touches_timestamps_and_generated_ids() {
    assert_eq!(
        NORMALISE.apply(
            r#"{"id":"chatcmpl-0123456789abcdef01234567","created":1732000000,"x":"chatcmpl-mock"}"#
        ),
        r#"{"id":"chatcmpl-<generated>","created":0,"x":"chatcmpl-mock"}"#
    );
}
