//! Top-level members of a JSON object, read without building a tree: the object is validated
//! in full, the members asked for are borrowed as raw JSON, and the text can then be edited
//! in place (a value replaced, a member removed). A passthrough answer needs no more: parsing
//! it into a `Value` and serialising it again costs allocations per node, for nothing.

use std::fmt;
use std::ops::Range;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

mod scan;

pub(crate) use scan::plain;

/// A member's value as written in the text: valid JSON, without the whitespace around it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Raw<'a>(&'a str);

impl<'a> Raw<'a> {
    pub fn get(self) -> &'a str {
        self.0
    }
}

/// Why a text is not an object whose members can be read.
#[derive(Debug)]
pub enum NotAnObject {
    /// Not JSON at all.
    Invalid(serde_json::Error),
    /// JSON, but not an object.
    Other,
}

/// Whether `text` has a `\uXXXX` escape. A parser into a tree decodes those (and refuses a
/// lone surrogate); callers that must give the same answer as one leave such texts to it.
pub fn has_unicode_escape(text: &[u8]) -> bool {
    memchr::memchr_iter(b'\\', text).any(|i| text.get(i + 1) == Some(&b'u'))
}

/// The values of the members `names` of the JSON object `text` (the last of a repeated
/// name, as a parser into a map keeps), borrowed from it. The whole text is validated,
/// UTF-8 included.
pub fn pick<'a, const N: usize>(
    text: &'a [u8],
    names: [&str; N],
) -> Result<[Option<Raw<'a>>; N], NotAnObject> {
    let Ok(text) = std::str::from_utf8(text) else {
        // The parser's own words for where the text stops being UTF-8.
        let e = serde_json::from_slice::<serde_json::Value>(text)
            .expect_err("a text that is not UTF-8 is not JSON");
        return Err(NotAnObject::Invalid(e));
    };
    match scan::pick::<N, true, true>(text, &names) {
        Some(found) => Ok(found),
        None => pick_with_serde(text, names),
    }
}

/// [`pick`] for a text that is to go on as it is unless it has `\u` escapes (which a parse
/// into a tree decodes, and where it refuses a lone surrogate): `Ok(None)` when it has one,
/// valid or not, for the caller to take the tree's path. One pass over the text where
/// [`has_unicode_escape`] and then [`pick`] would make two.
pub fn pick_unescaped<'a, const N: usize>(
    text: &'a [u8],
    names: [&str; N],
) -> Result<Option<[Option<Raw<'a>>; N]>, NotAnObject> {
    if let Ok(s) = std::str::from_utf8(text) {
        if let Some(found) = scan::pick::<N, true, false>(s, &names) {
            return Ok(Some(found));
        }
    }
    if has_unicode_escape(text) {
        return Ok(None);
    }
    pick(text, names).map(Some)
}

/// [`pick`] for a stream event to be relayed as it is, on one line: the members when the
/// text is an object without line breaks and without `\u` escapes that the fast scanner
/// takes. `None` leaves the event to a parse into a tree, which also says what is wrong with
/// it.
pub fn pick_line<'a, const N: usize>(
    text: &'a [u8],
    names: [&str; N],
) -> Option<[Option<Raw<'a>>; N]> {
    scan::pick::<N, false, false>(std::str::from_utf8(text).ok()?, &names)
}

/// [`pick`] by `serde_json`: the authority for what the scanner steps aside from, and the
/// words of every error.
fn pick_with_serde<'a, const N: usize>(
    text: &'a str,
    names: [&str; N],
) -> Result<[Option<Raw<'a>>; N], NotAnObject> {
    let starts_as_object = text.trim_ascii_start().starts_with('{');
    let mut de = serde_json::Deserializer::from_str(text);
    let picked = Pick(&names).deserialize(&mut de).and_then(|v| {
        de.end()?;
        Ok(v)
    });
    match picked {
        Ok(v) => Ok(v.map(|v| v.map(|v| Raw(v.get())))),
        Err(e) if starts_as_object => Err(NotAnObject::Invalid(e)),
        // Valid JSON of another kind, or not JSON: the error says which.
        Err(_) => match serde_json::from_str::<IgnoredAny>(text) {
            Ok(_) => Err(NotAnObject::Other),
            Err(e) => Err(NotAnObject::Invalid(e)),
        },
    }
}

/// Where `value` (borrowed from `text`) lies in it.
pub fn span(text: &[u8], value: Raw<'_>) -> Range<usize> {
    let start = value.get().as_ptr() as usize - text.as_ptr() as usize;
    debug_assert!(start + value.get().len() <= text.len());
    start..start + value.get().len()
}

/// Whether `value` is JSON `null`.
pub fn is_null(value: Raw<'_>) -> bool {
    value.get() == "null"
}

/// Whether `value` is an empty array.
pub fn is_empty_array(value: Raw<'_>) -> bool {
    value
        .get()
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .eq(*b"[]")
}

/// The span of the whole member `name` whose value is `value` in the object `text` — its
/// name, the colon, the value and one comma beside it — so that removing it leaves a valid
/// object. `None` when the name is not written plainly (`"name"`, no escapes) just before the
/// value.
pub fn member_span(text: &[u8], name: &str, value: Raw<'_>) -> Option<Range<usize>> {
    let v = span(text, value);
    let before = |mut i: usize| {
        while i > 0 && text[i - 1].is_ascii_whitespace() {
            i -= 1;
        }
        i
    };
    let colon = before(v.start);
    if colon == 0 || text[colon - 1] != b':' {
        return None;
    }
    let key_end = before(colon - 1);
    let quoted_len = name.len() + 2;
    let key_start = key_end.checked_sub(quoted_len)?;
    let key = &text[key_start..key_end];
    if key[0] != b'"' || key[quoted_len - 1] != b'"' || &key[1..quoted_len - 1] != name.as_bytes() {
        return None;
    }
    let prev = before(key_start);
    match text.get(prev.wrapping_sub(1)) {
        // Not the first member: the comma before it goes with it.
        Some(b',') => Some(prev - 1..v.end),
        // The first member: the comma after it, when another member follows.
        Some(b'{') => {
            let mut end = v.end;
            while end < text.len() && text[end].is_ascii_whitespace() {
                end += 1;
            }
            match text.get(end) {
                Some(b',') => {
                    end += 1;
                    while end < text.len() && text[end].is_ascii_whitespace() {
                        end += 1;
                    }
                    Some(key_start..end)
                }
                Some(b'}') => Some(key_start..v.end),
                _ => None,
            }
        }
        _ => None,
    }
}

/// `text` with each range replaced by its bytes (ranges not overlapping), given piece by
/// piece to `put`.
pub fn splice(text: &[u8], edits: &mut [(Range<usize>, &[u8])], mut put: impl FnMut(&[u8])) {
    edits.sort_by_key(|(r, _)| r.start);
    let mut at = 0;
    for (r, with) in edits.iter() {
        put(&text[at..r.start]);
        put(with);
        at = r.end;
    }
    put(&text[at..]);
}

struct Pick<'n, const N: usize>(&'n [&'n str; N]);

impl<'de, const N: usize> DeserializeSeed<'de> for Pick<'_, N> {
    type Value = [Option<&'de RawValue>; N];

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for Pick<'_, N> {
    type Value = [Option<&'de RawValue>; N];

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = [None; N];
        while let Some(i) = map.next_key_seed(Name(self.0))? {
            match i {
                Some(i) => out[i] = Some(map.next_value::<&RawValue>()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

/// A member name → its index in the names asked for.
struct Name<'n, const N: usize>(&'n [&'n str; N]);

impl<'de, const N: usize> DeserializeSeed<'de> for Name<'_, N> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<const N: usize> Visitor<'_> for Name<'_, N> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|n| *n == s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remove(text: &str, name: &str) -> Option<String> {
        let [v] = pick(text.as_bytes(), [name]).unwrap();
        let r = member_span(text.as_bytes(), name, v?)?;
        let mut out = Vec::new();
        splice(text.as_bytes(), &mut [(r, b"")], |s| {
            out.extend_from_slice(s)
        });
        Some(String::from_utf8(out).unwrap())
    }

    #[test]
    fn members_are_borrowed_and_the_last_of_a_repeated_name_wins() {
        let text = br#"{"a": 1, "model" : "m1", "b": {"model": "inner"}, "model": "m2"}"#;
        let [model, b, c] = pick(text, ["model", "b", "c"]).unwrap();
        assert_eq!(model.unwrap().get(), r#""m2""#);
        assert_eq!(b.unwrap().get(), r#"{"model": "inner"}"#);
        assert!(c.is_none());
        let r = span(text, model.unwrap());
        assert_eq!(&text[r], br#""m2""#);
        // Escaped names are matched by their value.
        let [m] = pick(br#"{"mod\u0065l": 3}"#, ["model"]).unwrap();
        assert_eq!(m.unwrap().get(), "3");
    }

    #[test]
    fn what_is_not_an_object_is_told_apart_from_what_is_not_json() {
        assert!(matches!(pick(b"[1, 2]", ["a"]), Err(NotAnObject::Other)));
        assert!(matches!(pick(b" \"s\" ", ["a"]), Err(NotAnObject::Other)));
        assert!(matches!(
            pick(b"<html>", ["a"]),
            Err(NotAnObject::Invalid(_))
        ));
        assert!(matches!(
            pick(b"{\"a\": }", ["a"]),
            Err(NotAnObject::Invalid(_))
        ));
        assert!(matches!(
            pick(b"{\"a\": 1} x", ["a"]),
            Err(NotAnObject::Invalid(_))
        ));
        assert!(matches!(
            pick(b"{\"a\": 1", ["a"]),
            Err(NotAnObject::Invalid(_))
        ));
        assert!(pick(b" {\"a\": 1}\n", ["a"]).is_ok());
        // Not UTF-8, even in a member not asked for.
        assert!(matches!(
            pick(b"{\"a\": 1, \"b\": \"\xff\"}", ["a"]),
            Err(NotAnObject::Invalid(_))
        ));
        assert!(has_unicode_escape(br#"{"a": "w\u00f6rld"}"#));
        assert!(!has_unicode_escape(br#"{"a": "line\nbreak"}"#));
    }

    #[test]
    fn a_member_is_removed_with_one_comma_wherever_it_is() {
        assert_eq!(
            remove(r#"{"usage": null, "a": 1}"#, "usage").unwrap(),
            r#"{"a": 1}"#
        );
        assert_eq!(
            remove(r#"{"a": 1, "usage": {"x": [1]}, "b": 2}"#, "usage").unwrap(),
            r#"{"a": 1, "b": 2}"#
        );
        assert_eq!(
            remove(r#"{"a": 1 ,"usage":null}"#, "usage").unwrap(),
            r#"{"a": 1 }"#
        );
        assert_eq!(remove(r#"{ "usage" : 5 }"#, "usage").unwrap(), r#"{  }"#);
        // A name written with escapes is left to the caller.
        assert!(remove(r#"{"a": 1, "us\u0061ge": null}"#, "usage").is_none());
        for text in [
            r#"{"usage": null, "a": 1}"#,
            r#"{"a": 1, "usage": {"x": [1]}, "b": 2}"#,
            r#"{"a":1,"usage":null}"#,
        ] {
            let out = remove(text, "usage").unwrap();
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert!(v.get("usage").is_none() && v.get("a").is_some(), "{out}");
        }
    }

    #[test]
    fn splices_apply_in_order() {
        let text = br#"{"model":"x","usage":null,"id":"c"}"#;
        let [model, usage] = pick(text, ["model", "usage"]).unwrap();
        let mut edits = [
            (
                member_span(text, "usage", usage.unwrap()).unwrap(),
                &b""[..],
            ),
            (span(text, model.unwrap()), &br#""public""#[..]),
        ];
        let mut out = Vec::new();
        splice(text, &mut edits, |s| out.extend_from_slice(s));
        assert_eq!(out, br#"{"model":"public","id":"c"}"#);
        assert!(is_null(usage.unwrap()));
        let [c] = pick(br#"{"c": [ ]}"#, ["c"]).unwrap();
        assert!(is_empty_array(c.unwrap()));
    }
}
