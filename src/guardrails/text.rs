//! Walking a request body's text: the helpers front doors build their input walkers from
//! (see [`InputApi`](super::InputApi)).

use serde_json::Value;

/// What a walker calls on every string it finds; it may change the string in place.
pub type Visit<'a> = dyn FnMut(&mut String) + 'a;

/// Calls `f` on every string in `v` — object keys and numbers included (a card number or a
/// secret can be either); a number or key that `f` changes is replaced by the new text.
pub fn leaves(v: &mut Value, f: &mut Visit) {
    leaves_except(v, &[], f);
}

/// [`leaves`], skipping the values (not the keys) of object members named in `skip`:
/// structural fields such as ids and types.
pub fn leaves_except(v: &mut Value, skip: &[&str], f: &mut Visit) {
    match v {
        Value::String(s) => f(s),
        Value::Number(n) => {
            let mut t = n.to_string();
            let before = t.clone();
            f(&mut t);
            if t != before {
                *v = Value::String(t);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| leaves_except(x, skip, f)),
        Value::Object(m) => {
            let entries: Vec<(String, Value)> = std::mem::take(m)
                .into_iter()
                .map(|(k, mut x)| {
                    let mut key = k.clone();
                    f(&mut key);
                    if !skip.contains(&k.as_str()) {
                        leaves_except(&mut x, skip, f);
                    }
                    (key, x)
                })
                .collect();
            m.extend(entries);
        }
        _ => {}
    }
}

/// Fields of content blocks and items that carry structure, not text.
pub const STRUCTURAL: &[&str] = &[
    "type",
    "id",
    "call_id",
    "tool_use_id",
    "status",
    "role",
    "media_type",
    "cache_control",
];

/// A string holding JSON: its string leaves, re-serialised if any changed; the string
/// itself if it is not JSON.
pub fn json_string(s: &mut String, f: &mut Visit) {
    match serde_json::from_str::<Value>(s) {
        Ok(mut v) if v.is_object() || v.is_array() => {
            let before = v.clone();
            leaves(&mut v, f);
            if v != before {
                if let Ok(t) = serde_json::to_string(&v) {
                    *s = t;
                }
            }
        }
        _ => f(s),
    }
}

pub fn get_str<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut String> {
    match v.get_mut(key) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

pub fn array<'a>(v: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    v.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flat_map(|a| a.iter_mut())
}

/// `content` as a string, or an array of parts whose text is under `text` (any part type
/// that has a string `text`: `text`, `input_text`, `output_text`).
pub fn content(v: &mut Value, f: &mut Visit) {
    match v {
        Value::String(s) => f(s),
        Value::Array(parts) => {
            for p in parts {
                if let Some(t) = get_str(p, "text") {
                    f(t);
                }
                if let Some(t) = get_str(p, "refusal") {
                    f(t);
                }
            }
        }
        _ => {}
    }
}
