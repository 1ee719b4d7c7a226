//! Golden-file tests for the front doors (`sluice::front`), from the files under
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

mod golden;

use std::path::Path;

use golden::Normalise;
use serde_json::{json, Map, Value};
use sluice::core::ApiError;
use sluice::core::StreamTranslator;
use sluice::front::{anthropic, responses, ChatToMessagesStream, ChatToResponsesStream};

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

const NORMALISE: Normalise = Normalise {
    timestamps: &["created_at"],
    id_prefixes: &["msg_", "resp_", "fc_", "call_", "toolu_"],
};

fn pretty(v: &Value) -> String {
    golden::pretty(v, &NORMALISE)
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

fn stream(door: Door, path: &Path, input: &str) -> String {
    golden::split_invariant(path, input, |pieces| {
        let mut t: Box<dyn StreamTranslator> = match door {
            Door::Anthropic => Box::new(ChatToMessagesStream::new("public-model")),
            Door::Responses => Box::new(ChatToResponsesStream::new("public-model")),
        };
        golden::run_stream(t.as_mut(), pieces, |e| error_json(door, e), &NORMALISE)
    })
}

#[test]
fn golden_files() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for (name, door) in DOORS {
        let (n, kinds_seen) = golden::check_dir(
            name,
            &NORMALISE,
            &mut failures,
            |path, _, what, input| match what {
                "request" => request(door, input),
                "response" => response(door, input),
                "stream" => stream(door, path, input),
                _ => panic!("{}: unknown fixture kind {what:?}", path.display()),
            },
        );
        checked += n;
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
        NORMALISE.apply(
            r#"{"id":"msg_0123456789abcdef01234567","created_at":1732000000,"x":"msg_abc"}"#
        ),
        r#"{"id":"msg_<generated>","created_at":0,"x":"msg_abc"}"#
    );
}
