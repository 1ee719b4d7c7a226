//! Golden-file tests for the front doors (`sluice::inbound`), from the files under
//! `tests/fixtures/inbound_anthropic/` and `tests/fixtures/inbound_responses/`.
//!
//! Each case is an input file and the expected output next to it:
//! - `NAME.request.json` — the client's request → `NAME.request.expected.json`: the OpenAI chat
//!   request, or the error (status, param, and the body the client gets).
//! - `NAME.response.json` — an OpenAI chat completion → `NAME.response.expected.json`: the
//!   front door's answer for model `public-model`, or the error.
//! - `NAME.stream.txt` — an OpenAI chunk stream → `NAME.stream.expected.txt`: the client's
//!   event stream; when the translator returned an error, its error events follow, then a
//!   `# error: {...}` line. Every stream is also fed split at every byte position and one
//!   byte at a time, and must give the same output.
//!
//! Ids derive from the upstream completion id; ids made up when there is none (`<prefix>` +
//! 24 hex digits) and timestamps taken from the clock are normalised. Run with
//! `SLUICE_BLESS=1` to write the expected files from the current output (then review the diff).

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use serde_json::{json, Map, Value};
use sluice::api::ApiError;
use sluice::inbound::{anthropic, responses, ChatToMessagesStream, ChatToResponsesStream};
use sluice::providers::StreamTranslator;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Door {
    Anthropic,
    Responses,
}

const DOORS: [(&str, Door); 2] = [
    ("inbound_anthropic", Door::Anthropic),
    ("inbound_responses", Door::Responses),
];

fn error_json(door: Door, e: &ApiError) -> Value {
    let body: Value = match door {
        Door::Anthropic => serde_json::from_slice(&anthropic::error_body(e)).unwrap(),
        Door::Responses => serde_json::from_slice(&responses::error_body(e)).unwrap(),
    };
    json!({"status": e.status, "param": e.param, "code": e.code, "body": body})
}

/// Made-up ids (`msg_`, `resp_`, `fc_`, `call_`, `toolu_` + 24 hex digits) → `<prefix><generated>`;
/// `"created_at":<digits>` → 0.
fn normalise(s: &str) -> String {
    let pats = ["\"created_at\":", "msg_", "resp_", "fc_", "call_", "toolu_"];
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    loop {
        let next = pats
            .iter()
            .filter_map(|p| rest.find(p).map(|at| (at, *p)))
            .min();
        let Some((at, pat)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at + pat.len()]);
        rest = &rest[at + pat.len()..];
        if pat.starts_with('"') {
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
            let after = rest.as_bytes().get(hex).copied();
            if hex == 24 && !after.is_some_and(|b| b.is_ascii_alphanumeric()) {
                out.push_str("<generated>");
                rest = &rest[hex..];
            }
        }
    }
}

fn pretty(v: &Value) -> String {
    normalise(&serde_json::to_string_pretty(v).unwrap()) + "\n"
}

fn request(door: Door, input: &str) -> String {
    let body: Map<String, Value> =
        serde_json::from_str(input).expect("request fixture is a JSON object");
    let out = match door {
        Door::Anthropic => anthropic::to_chat(&body),
        Door::Responses => responses::to_chat(&body),
    };
    pretty(&match out {
        Ok(req) => Value::Object(req),
        Err(e) => error_json(door, &e),
    })
}

fn response(door: Door, input: &str) -> String {
    let body = input.trim_end().as_bytes();
    let out = match door {
        Door::Anthropic => anthropic::from_chat_response(body, "public-model"),
        Door::Responses => responses::from_chat_response(body, "public-model"),
    };
    pretty(&match out {
        Ok(b) => serde_json::from_slice::<Value>(&b).expect("answer is JSON"),
        Err(e) => error_json(door, &e),
    })
}

fn run_stream(door: Door, pieces: &[&[u8]]) -> String {
    let mut a = ChatToMessagesStream::new("public-model");
    let mut r = ChatToResponsesStream::new("public-model");
    let t: &mut dyn StreamTranslator = match door {
        Door::Anthropic => &mut a,
        Door::Responses => &mut r,
    };
    let mut out = BytesMut::new();
    let mut result = Ok(());
    for p in pieces {
        result = t.feed(p, &mut out);
        if result.is_err() {
            break;
        }
    }
    let result = result.and_then(|()| t.finish(&mut out));
    if let Err(e) = &result {
        match door {
            Door::Anthropic => out.extend_from_slice(&anthropic::error_event(e)),
            Door::Responses => out.extend_from_slice(&r.error_event(e)),
        }
    }
    let mut s = String::from_utf8(out.to_vec()).expect("the translated stream is UTF-8");
    if let Err(e) = result {
        s.push_str("# error: ");
        s.push_str(&serde_json::to_string(&error_json(door, &e)).unwrap());
        s.push('\n');
    }
    normalise(&s)
}

fn stream(door: Door, path: &Path, input: &str) -> String {
    let bytes = input.as_bytes();
    let whole = run_stream(door, &[bytes]);
    for i in 0..=bytes.len() {
        let (a, b) = bytes.split_at(i);
        assert_eq!(
            run_stream(door, &[a, b]),
            whole,
            "{}: split at byte {i} changes the output",
            path.display()
        );
    }
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(
        run_stream(door, &singles),
        whole,
        "{}: one byte at a time changes the output",
        path.display()
    );
    whole
}

#[test]
fn golden_files() {
    let bless = std::env::var_os("SLUICE_BLESS").is_some();
    let mut checked = 0;
    let mut failures = Vec::new();
    for (name, door) in DOORS {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
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
                "request" => request(door, &input),
                "response" => response(door, &input),
                "stream" => stream(door, &path, &input),
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
        for what in ["request", "response", "stream"] {
            assert!(
                kinds_seen.contains(what),
                "tests/fixtures/{name} has no {what} fixture"
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(checked >= 30, "only {checked} fixtures found");
}

#[test]
fn normalise_only_touches_made_up_ids_and_timestamps() {
    assert_eq!(
        normalise(r#"{"id":"msg_0123456789abcdef01234567","created_at":1732000000,"x":"msg_abc"}"#),
        r#"{"id":"msg_<generated>","created_at":0,"x":"msg_abc"}"#
    );
}
