//! JSONPath (RFC 9535) queries selecting which string values a guardrail inspects on input.
//!
//! Parsing and evaluation are jsonpath-rust's: names (`.name`, `['name']`), wildcards, indexes
//! (negative counts from the end), slices (`[-2:]`), unions (`['a','b']`), filters
//! (`[?@.role=='user']`) and recursive descent (`..`). A selected object or array stands for
//! all the strings inside it. Whitespace that RFC 9535 forbids but the parser would take (inside
//! a name or number, after `.` or `-`) is refused, so `$.messages content` is an error rather
//! than a path to a member named "messages content".

use jsonpath_rust::parser::errors::JsonPathError;
use jsonpath_rust::parser::model::JpQuery;
use jsonpath_rust::parser::parse_json_path;
use jsonpath_rust::query::js_path_process;
use jsonpath_rust::query::queryable::Queryable;
use serde_json::Value;

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    query: JpQuery,
}

impl JsonPath {
    /// Parses a path; the error says what is wrong (the caller adds the key path).
    pub fn parse(s: &str) -> Result<JsonPath, String> {
        let err = |what: &str| format!("invalid JSONPath {s:?}: {what}");
        if !s.starts_with('$') {
            return Err(err("must start with $"));
        }
        if let Some(col) = stray_space(s) {
            return Err(err(&format!("unexpected whitespace at column {col}")));
        }
        let query = parse_json_path(s).map_err(|e| err(&describe(&e)))?;
        Ok(JsonPath { query })
    }

    /// Calls `f` on every string selected by the path (strings inside selected objects and
    /// arrays included), in the order the query selects them.
    pub fn for_each_string(&self, v: &mut Value, f: &mut dyn FnMut(&mut String)) {
        // The query borrows `v`: take the normalized paths (`$['a'][0]`) of what it selects,
        // then reach each one mutably. Visiting only rewrites strings, so every path stays valid.
        let paths: Vec<String> = match js_path_process(&self.query, &*v) {
            Ok(found) => found.into_iter().map(|r| r.path).collect(),
            Err(_) => return,
        };
        for p in paths {
            if let Some(node) = v.reference_mut(p) {
                strings(node, f);
            }
        }
    }
}

/// A parser error on one line: what was expected and where (the parser's own text draws a
/// caret under the query over several lines).
fn describe(e: &JsonPathError) -> String {
    let JsonPathError::PestError(p) = e else {
        return e.to_string();
    };
    let text = p.to_string();
    let col = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("--> "))
        .and_then(|at| at.rsplit(':').next());
    match col {
        Some(col) => format!("{} at column {col}", p.variant.message()),
        None => p.variant.message().into_owned(),
    }
}

/// The 1-based column of whitespace outside quoted strings that RFC 9535 never allows: between
/// two name or number characters, or after `.` or `-`.
fn stray_space(s: &str) -> Option<usize> {
    let word = |c: char| c == '_' || c.is_ascii_alphanumeric() || !c.is_ascii();
    let (mut quote, mut escaped) = (None, false);
    let (mut prev, mut space_at) = (None, None);
    for (i, c) in s.chars().enumerate() {
        if let Some(q) = quote {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                _ if c == q => quote = None,
                _ => {}
            }
            prev = Some(c);
            continue;
        }
        if c.is_whitespace() {
            space_at.get_or_insert(i + 1);
            continue;
        }
        if let (Some(at), Some(p)) = (space_at.take(), prev) {
            if p == '.' || p == '-' || (word(p) && word(c)) {
                return Some(at);
            }
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
        }
        prev = Some(c);
    }
    None
}

/// Calls `f` on every string in `v`, `v` itself included.
fn strings(v: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter_mut().for_each(|x| strings(x, f)),
        Value::Object(m) => m.values_mut().for_each(|x| strings(x, f)),
        _ => {}
    }
}
