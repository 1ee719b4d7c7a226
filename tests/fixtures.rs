//! Golden-file tests for the translators, from the files under `tests/fixtures/<provider>/`.
//!
//! Each case is an input file and the expected output next to it:
//! - `NAME.request.json` — the client's OpenAI request → `NAME.request.expected.json`: the path
//!   and body sent to the provider (model `upstream-model`, or the request's
//!   `x-fixture-upstream-model`), or the client error.
//! - `NAME.response.json` — a provider's whole answer → `NAME.response.expected.json`: the
//!   OpenAI answer for model `public-model` and the usage read from it, or the error.
//! - `NAME.stream.txt` — a provider's stream body → `NAME.stream.expected.txt`: the OpenAI SSE
//!   stream (the client asked for usage), ending with `# error: {...}` when the stream is
//!   broken. Every stream is also fed split at every byte position and one byte at a time,
//!   and must give the same output.
//! - `NAME.error.json` — `{"status", "body", "retry_after"}` of a provider error →
//!   `NAME.error.expected.json`: the status and OpenAI error body the client gets.
//!
//! Cases whose name starts with `embed` are embeddings requests. `created` timestamps and the
//! ids sluice makes up are normalised before comparing. Run with `SLUICE_BLESS=1` to write
//! the expected files from the current output (then review the diff).

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use serde_json::{json, Value};
use sluice::api::ApiError;
use sluice::config::{BaseUrl, Provider, ProviderKind};
use sluice::providers::Wire;
use sluice::secret::Secret;

const PROVIDERS: [(&str, ProviderKind); 6] = [
    ("openai", ProviderKind::OpenAi),
    ("groq", ProviderKind::Groq),
    ("xai", ProviderKind::Xai),
    ("anthropic", ProviderKind::Anthropic),
    ("gemini", ProviderKind::Gemini),
    ("ollama", ProviderKind::Ollama),
];

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

/// `"created":<digits>` → `"created":0`; made-up `chatcmpl-<hex>` ids → `chatcmpl-<generated>`.
fn normalise(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    loop {
        let next = [("\"created\":", 0usize), ("chatcmpl-", 1)]
            .iter()
            .filter_map(|(pat, which)| rest.find(pat).map(|at| (at, *pat, *which)))
            .min();
        let Some((at, pat, which)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at + pat.len()]);
        rest = &rest[at + pat.len()..];
        if which == 0 {
            let spaces = rest.bytes().take_while(|b| *b == b' ').count();
            out.push_str(&rest[..spaces]);
            rest = &rest[spaces..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits > 0 {
                out.push('0');
                rest = &rest[digits..];
            }
        } else {
            let hex = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
            if hex == 24 {
                out.push_str("<generated>");
                rest = &rest[hex..];
            }
        }
    }
}

fn pretty(v: &Value) -> String {
    normalise(&serde_json::to_string_pretty(v).unwrap()) + "\n"
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

fn run_stream(wire: Wire, pieces: &[&[u8]]) -> String {
    let mut t = wire.stream("public-model", true);
    let mut out = BytesMut::new();
    let mut result = Ok(());
    for p in pieces {
        result = t.feed(p, &mut out);
        if result.is_err() {
            break;
        }
    }
    let result = result.and_then(|()| t.finish(&mut out));
    let mut s = String::from_utf8(out.to_vec()).expect("the translated stream is UTF-8");
    if let Err(e) = result {
        s.push_str("# error: ");
        s.push_str(&serde_json::to_string(&error_json(&e)).unwrap());
        s.push('\n');
    }
    normalise(&s)
}

fn stream(wire: Wire, path: &Path, input: &str) -> String {
    let bytes = input.as_bytes();
    let whole = run_stream(wire, &[bytes]);
    for i in 0..=bytes.len() {
        let (a, b) = bytes.split_at(i);
        assert_eq!(
            run_stream(wire, &[a, b]),
            whole,
            "{}: split at byte {i} changes the output",
            path.display()
        );
    }
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(
        run_stream(wire, &singles),
        whole,
        "{}: one byte at a time changes the output",
        path.display()
    );
    whole
}

fn error(wire: Wire, p: &Provider, input: &str) -> String {
    let v: Value = serde_json::from_str(input).expect("error fixture is JSON");
    let status = v["status"].as_u64().expect("error fixture has a status") as u16;
    let body = match &v["body"] {
        Value::String(s) => s.clone().into_bytes(),
        other => serde_json::to_vec(other).unwrap(),
    };
    let retry_after = v["retry_after"].as_str().map(str::to_string);
    let e = wire.error(status, &body, p, retry_after);
    let out = pretty(&error_json(&e));
    assert!(
        !out.contains("sk-fake-fixture-provider-key"),
        "an error leaks the provider key"
    );
    out
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn golden_files() {
    let bless = std::env::var_os("SLUICE_BLESS").is_some();
    let mut checked = 0;
    let mut failures = Vec::new();
    for (name, kind) in PROVIDERS {
        let dir = fixtures_dir().join(name);
        let p = provider(name, kind);
        let wire = Wire::of(kind);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| !p.to_string_lossy().contains(".expected."))
            .collect();
        files.sort();
        let mut kinds_seen = std::collections::BTreeSet::new();
        for path in files {
            let file = path.file_name().unwrap().to_string_lossy().to_string();
            let mut parts = file.splitn(3, '.');
            let (case, what, ext) = (
                parts.next().unwrap(),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            let input = std::fs::read_to_string(&path).unwrap();
            let got = match what {
                "request" => request(wire, case, &input),
                "response" => response(wire, case, &input),
                "stream" => stream(wire, &path, &input),
                "error" => error(wire, &p, &input),
                _ => panic!("{}: unknown fixture kind {what:?}", path.display()),
            };
            kinds_seen.insert(what.to_string());
            let expected_path = dir.join(format!("{case}.{what}.expected.{ext}"));
            if bless {
                std::fs::write(&expected_path, &got).unwrap();
            } else {
                match std::fs::read_to_string(&expected_path) {
                    Ok(want) if normalise(&want) == got => {}
                    Ok(want) => failures.push(format!(
                        "{}:\n--- expected\n{want}\n--- got\n{got}",
                        expected_path.display()
                    )),
                    Err(e) => failures.push(format!("{}: {e}", expected_path.display())),
                }
            }
            checked += 1;
        }
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
        normalise(
            r#"{"id":"chatcmpl-0123456789abcdef01234567","created":1732000000,"x":"chatcmpl-mock"}"#
        ),
        r#"{"id":"chatcmpl-<generated>","created":0,"x":"chatcmpl-mock"}"#
    );
}
