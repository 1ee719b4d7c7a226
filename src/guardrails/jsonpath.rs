//! A small JSONPath subset selecting which string values a guardrail inspects on input.
//!
//! Supported: `$` (the root, required first), `.name`, `['name']` / `["name"]`, `.*` / `[*]`,
//! `[N]` (negative counts from the end) and recursive descent `..name`, `..*`, `..[N]`. A
//! selected object or array stands for all the strings inside it. Filters, slices and unions
//! are refused when the config is loaded.

use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Child(String),
    Index(i64),
    Wildcard,
    /// `..` followed by a step: that step at this node or any node below it.
    Descend(Box<Seg>),
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    segs: Vec<Seg>,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

impl JsonPath {
    /// Parses a path; the error says what is wrong (the caller adds the key path).
    pub fn parse(s: &str) -> Result<JsonPath, String> {
        let rest = s
            .strip_prefix('$')
            .ok_or_else(|| format!("invalid JSONPath {s:?}: must start with $"))?;
        let b = rest.as_bytes();
        let mut i = 0;
        let mut segs = Vec::new();
        let err = |what: &str| format!("invalid JSONPath {s:?}: {what}");
        while i < b.len() {
            let (descend, dotted) = if rest[i..].starts_with("..") {
                i += 2;
                (true, true)
            } else if b[i] == b'.' {
                i += 1;
                (false, true)
            } else {
                (false, false)
            };
            let seg = if dotted {
                if i < b.len() && b[i] == b'[' {
                    let (seg, n) = parse_bracket(&rest[i..]).map_err(|m| err(&m))?;
                    i += n;
                    seg
                } else if i < b.len() && b[i] == b'*' {
                    i += 1;
                    Seg::Wildcard
                } else {
                    let n = rest[i..]
                        .find(|c: char| !is_name_char(c))
                        .unwrap_or(rest.len() - i);
                    if n == 0 {
                        return Err(err("expected a name after '.'"));
                    }
                    let seg = Seg::Child(rest[i..i + n].to_string());
                    i += n;
                    seg
                }
            } else if b[i] == b'[' {
                let (seg, n) = parse_bracket(&rest[i..]).map_err(|m| err(&m))?;
                i += n;
                seg
            } else {
                return Err(err(&format!("unexpected {:?}", &rest[i..])));
            };
            segs.push(if descend {
                Seg::Descend(Box::new(seg))
            } else {
                seg
            });
        }
        Ok(JsonPath { segs })
    }

    /// Calls `f` on every string selected by the path (strings inside selected objects and
    /// arrays included).
    pub fn for_each_string(&self, v: &mut Value, f: &mut dyn FnMut(&mut String)) {
        walk(v, &self.segs, f);
    }
}

/// Parses `[...]` at the start of `s`; returns the step and the bytes consumed.
fn parse_bracket(s: &str) -> Result<(Seg, usize), String> {
    let close = s.find(']').ok_or("unclosed '['")?;
    let inner = s[1..close].trim();
    let seg = if inner == "*" {
        Seg::Wildcard
    } else if let Some(q) = inner
        .strip_prefix('\'')
        .and_then(|x| x.strip_suffix('\''))
        .or_else(|| inner.strip_prefix('"').and_then(|x| x.strip_suffix('"')))
    {
        if q.contains(['\'', '"', '\\']) {
            return Err("quotes and escapes inside a bracketed name are not supported".into());
        }
        Seg::Child(q.to_string())
    } else if let Ok(n) = inner.parse::<i64>() {
        Seg::Index(n)
    } else {
        return Err(format!(
            "unsupported selector [{inner}] (supported: [*], [N], ['name'])"
        ));
    };
    Ok((seg, close + 1))
}

fn strings(v: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter_mut().for_each(|x| strings(x, f)),
        Value::Object(m) => m.values_mut().for_each(|x| strings(x, f)),
        _ => {}
    }
}

fn step(v: &mut Value, seg: &Seg, rest: &[Seg], f: &mut dyn FnMut(&mut String)) {
    match (seg, v) {
        (Seg::Child(name), Value::Object(m)) => {
            if let Some(c) = m.get_mut(name) {
                walk(c, rest, f);
            }
        }
        (Seg::Index(i), Value::Array(a)) => {
            let len = a.len() as i64;
            let i = if *i < 0 { len + i } else { *i };
            if (0..len).contains(&i) {
                walk(&mut a[i as usize], rest, f);
            }
        }
        (Seg::Wildcard, Value::Array(a)) => a.iter_mut().for_each(|x| walk(x, rest, f)),
        (Seg::Wildcard, Value::Object(m)) => m.values_mut().for_each(|x| walk(x, rest, f)),
        _ => {}
    }
}

fn walk(v: &mut Value, segs: &[Seg], f: &mut dyn FnMut(&mut String)) {
    let Some((seg, rest)) = segs.split_first() else {
        strings(v, f);
        return;
    };
    match seg {
        Seg::Descend(inner) => {
            step(v, inner, rest, f);
            match v {
                Value::Array(a) => a.iter_mut().for_each(|x| walk(x, segs, f)),
                Value::Object(m) => m.values_mut().for_each(|x| walk(x, segs, f)),
                _ => {}
            }
        }
        _ => step(v, seg, rest, f),
    }
}
