//! The shape docs/ARCHITECTURE.md promises, checked on the source tree: no import cycle
//! between the top-level modules, `core` depending on none of them, no source file over 600
//! lines and no function on the request path over 80 (tests and fixtures aside), and every
//! registered provider and client API living in its own module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 600;
const MAX_FN_LINES: usize = 80;
/// Modules a request passes through.
const REQUEST_PATH: [&str; 8] = [
    "core",
    "front",
    "pipeline",
    "providers",
    "upstream",
    "routing",
    "limits",
    "guardrails",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Product source files (not tests), with their text up to the first `#[cfg(test)]`.
fn sources() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .filter(|p| {
            let s = p.to_string_lossy();
            !s.contains("/tests/") && !s.ends_with("tests.rs")
        })
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let text = match text.find("#[cfg(test)]") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            (p, text)
        })
        .collect()
}

/// The top-level module a file belongs to (`src/pipeline/attempt.rs` → `pipeline`).
fn top_module(path: &Path) -> String {
    let rel = path.strip_prefix(root().join("src")).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Top-level module → the top-level modules it names as `crate::<module>`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in sources() {
        let from = top_module(&path);
        if from == "lib" || from == "main" {
            continue;
        }
        let deps = graph.entry(from.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != from {
                deps.insert(name);
            }
        }
    }
    graph
}

fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_string()];
    while let Some(m) = stack.pop() {
        for next in graph.get(&m).into_iter().flatten() {
            if next == to {
                return true;
            }
            if seen.insert(next.clone()) {
                stack.push(next.clone());
            }
        }
    }
    false
}

#[test]
fn no_import_cycle_between_modules_and_core_depends_on_none() {
    let graph = imports();
    assert!(graph.len() >= 10, "modules found: {:?}", graph.keys());
    let cycles: Vec<String> = graph
        .iter()
        .flat_map(|(m, deps)| deps.iter().map(move |d| (m, d)))
        .filter(|(m, d)| reaches(&graph, d, m))
        .map(|(m, d)| format!("{m} -> {d}"))
        .collect();
    assert!(cycles.is_empty(), "import cycles: {cycles:?}");
    assert_eq!(
        graph.get("core").cloned().unwrap_or_default(),
        BTreeSet::new(),
        "core must not depend on any other module"
    );
}

#[test]
fn no_file_over_600_lines() {
    let mut long = Vec::new();
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    rust_files(&root().join("crates"), &mut files);
    for p in files {
        let s = p.to_string_lossy();
        if s.contains("/tests/") || s.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        // Unit tests at the end of a file are test code.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let n = code.lines().count();
        if n > MAX_FILE_LINES {
            long.push(format!("{s}: {n} lines"));
        }
    }
    assert!(
        long.is_empty(),
        "files over {MAX_FILE_LINES} lines: {long:#?}"
    );
}

#[test]
fn no_function_on_the_request_path_over_80_lines() {
    let mut long = Vec::new();
    for (path, text) in sources() {
        if !REQUEST_PATH.contains(&top_module(&path).as_str()) {
            continue;
        }
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            let indent = &line[..line.len() - trimmed.len()];
            let is_fn = [
                "fn ",
                "pub fn ",
                "pub(crate) fn ",
                "pub(super) fn ",
                "async fn ",
            ]
            .iter()
            .chain(&[
                "pub async fn ",
                "pub(crate) async fn ",
                "pub(super) async fn ",
            ])
            .any(|p| trimmed.starts_with(p));
            if !is_fn || line.trim_end().ends_with(';') {
                continue;
            }
            let close = format!("{indent}}}");
            if let Some(len) = lines[i + 1..].iter().position(|l| *l == close) {
                if len + 2 > MAX_FN_LINES {
                    let after = trimmed.split("fn ").nth(1).unwrap_or(trimmed);
                    let name = after.split(['(', '<']).next().unwrap_or(after);
                    long.push(format!(
                        "{}:{} {name}: {} lines",
                        path.display(),
                        i + 1,
                        len + 2
                    ));
                }
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines: {long:#?}"
    );
}

#[test]
fn every_provider_and_client_api_has_its_own_module() {
    let src = root().join("src");
    let kinds = std::fs::read_to_string(src.join("providers/kind.rs")).unwrap();
    for module in ["openai", "anthropic", "gemini", "ollama"] {
        assert!(
            kinds.contains(&format!("&{module}::")),
            "providers/kind.rs registers no {module} wire"
        );
        assert!(src.join("providers").join(module).join("mod.rs").is_file());
    }
    let doors = std::fs::read_to_string(src.join("front/door.rs")).unwrap();
    for (module, door) in [
        ("openai", "OpenAiDoor"),
        ("anthropic", "AnthropicDoor"),
        ("responses", "ResponsesDoor"),
    ] {
        assert!(
            doors.contains(&format!("super::{module}::{door}")),
            "front/door.rs registers no {door}"
        );
    }
}
