//! What the golden-file drivers (`tests/fixtures.rs`, `tests/inbound_fixtures.rs`) share:
//! walking a fixture folder, comparing (or, with `SLUICE_BLESS=1`, writing) expected files,
//! feeding streams split at every byte position, and normalising what the clock and the
//! random generator put in an answer.
//!
//! A case is an input file `NAME.KIND.EXT` and its expected output `NAME.KIND.expected.EXT`.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use serde_json::Value;
use sluice::core::ApiError;
use sluice::core::StreamTranslator;

/// What varies from run to run.
pub struct Normalise {
    /// `"KEY":<digits>` → `"KEY":0` (timestamps).
    pub timestamps: &'static [&'static str],
    /// `PREFIX<24 hex digits>` → `PREFIX<generated>` (ids made up by sluice).
    pub id_prefixes: &'static [&'static str],
}

impl Normalise {
    pub fn apply(&self, s: &str) -> String {
        let keys: Vec<String> = self
            .timestamps
            .iter()
            .map(|k| format!("\"{k}\":"))
            .collect();
        let pats: Vec<(&str, bool)> = keys
            .iter()
            .map(|k| (k.as_str(), true))
            .chain(self.id_prefixes.iter().map(|p| (*p, false)))
            .collect();
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        loop {
            let next = pats
                .iter()
                .filter_map(|(p, ts)| rest.find(p).map(|at| (at, *p, *ts)))
                .min();
            let Some((at, pat, timestamp)) = next else {
                out.push_str(rest);
                return out;
            };
            out.push_str(&rest[..at + pat.len()]);
            rest = &rest[at + pat.len()..];
            if timestamp {
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
}

/// Pretty JSON, normalised, with a final newline.
pub fn pretty(v: &Value, n: &Normalise) -> String {
    n.apply(&serde_json::to_string_pretty(v).unwrap()) + "\n"
}

/// Runs a stream translator over `pieces`: its output, then (when it failed) the events
/// `on_error` gives and a `# error: {...}` line with `error_json` of the error.
pub fn run_stream(
    t: &mut dyn StreamTranslator,
    pieces: &[&[u8]],
    error_json: impl Fn(&ApiError) -> Value,
    n: &Normalise,
) -> String {
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
        let events = t.error_event(e);
        out.extend_from_slice(&events);
    }
    let mut s = String::from_utf8(out.to_vec()).expect("the translated stream is UTF-8");
    if let Err(e) = result {
        s.push_str("# error: ");
        s.push_str(&serde_json::to_string(&error_json(&e)).unwrap());
        s.push('\n');
    }
    n.apply(&s)
}

/// The output of `run` on the whole input, after checking that every split of the input in
/// two, and one byte at a time, gives the same.
pub fn split_invariant(path: &Path, input: &str, run: impl Fn(&[&[u8]]) -> String) -> String {
    let bytes = input.as_bytes();
    let whole = run(&[bytes]);
    for i in 0..=bytes.len() {
        let (a, b) = bytes.split_at(i);
        assert_eq!(
            run(&[a, b]),
            whole,
            "{}: split at byte {i} changes the output",
            path.display()
        );
    }
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(
        run(&singles),
        whole,
        "{}: one byte at a time changes the output",
        path.display()
    );
    whole
}

/// Checks every case in `tests/fixtures/<dir>`: `case(path, name, kind, input)` gives the
/// output to compare with the expected file. Returns the number of cases and the kinds seen;
/// mismatches are appended to `failures`.
pub fn check_dir(
    dir: &str,
    n: &Normalise,
    failures: &mut Vec<String>,
    mut case: impl FnMut(&Path, &str, &str, &str) -> String,
) -> (usize, BTreeSet<String>) {
    let bless = std::env::var_os("SLUICE_BLESS").is_some();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_string_lossy().contains(".expected."))
        .collect();
    files.sort();
    let mut kinds = BTreeSet::new();
    let mut checked = 0;
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let mut parts = file.splitn(3, '.');
        let (name, kind, ext) = (
            parts.next().unwrap(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let input = std::fs::read_to_string(&path).unwrap();
        let got = case(&path, name, kind, &input);
        kinds.insert(kind.to_string());
        let expected = dir.join(format!("{name}.{kind}.expected.{ext}"));
        if bless {
            std::fs::write(&expected, &got).unwrap();
        } else {
            match std::fs::read_to_string(&expected) {
                Ok(want) if n.apply(&want) == got => {}
                Ok(want) => failures.push(format!(
                    "{}:\n--- expected\n{want}\n--- got\n{got}",
                    expected.display()
                )),
                Err(e) => failures.push(format!("{}: {e}", expected.display())),
            }
        }
        checked += 1;
    }
    (checked, kinds)
}
