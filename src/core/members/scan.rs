//! The fast path of [`super::pick`]: one pass over the bytes that validates JSON's grammar
//! and notes where the asked-for top-level members lie, without a deserialiser's machinery
//! per value (several times cheaper on the answers and chunks sluice relays). It is a loop,
//! not a descent: the open containers are bits of one integer, so a value costs a byte's
//! dispatch and runs of string content are skipped sixteen bytes at a time.
//!
//! It answers only when it is sure to agree with `serde_json`: anything it does not take
//! plainly — an error of any kind, a member name written with escapes, nesting deeper than
//! [`MAX_DEPTH`] — makes it step aside (`None`), and the caller asks `serde_json`, whose
//! answer (and words for an error) stand. Callers that relay a text as it is can also have it
//! step aside from line breaks between tokens (`BREAKS` false: an event relayed on one line)
//! and from `\u` escapes (`U_ESCAPES` false: a parser decodes those, and refuses a lone
//! surrogate), so that the text is scanned once.

use super::Raw;
#[cfg(any(test, not(all(target_arch = "x86_64", target_feature = "sse2"))))]
use crate::core::words;

/// Deeper than this is left to `serde_json` (whose own limit is 128); the open containers
/// must fit the bits of a `u128`.
const MAX_DEPTH: u32 = 100;

/// Bytes that end a run of plain string content: the quote, the backslash and the control
/// characters (which JSON does not allow unescaped).
#[cfg(any(test, not(all(target_arch = "x86_64", target_feature = "sse2"))))]
static STOPS: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// The values of the top-level members `names` of the object `text` (the last of a
/// repeated name), or `None` to leave the text to `serde_json` — or, where `BREAKS` or
/// `U_ESCAPES` is false, to a caller that does not take line breaks between tokens or `\u`
/// escapes as they are.
pub(super) fn pick<'a, const N: usize, const BREAKS: bool, const U_ESCAPES: bool>(
    text: &'a str,
    names: &[&str; N],
) -> Option<[Option<Raw<'a>>; N]> {
    let b = text.as_bytes();
    let i = ws::<BREAKS>(b, 0);
    b.get(i).filter(|&&c| c == b'{')?;
    let i = ws::<BREAKS>(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return (ws::<BREAKS>(b, i + 1) == b.len()).then_some([None; N]);
    }
    members::<N, BREAKS, U_ESCAPES>(text, names, i)
}

/// [`pick`] from the first member's name at `i`, in an object that is not empty.
#[inline(always)]
fn members<'a, const N: usize, const BREAKS: bool, const U_ESCAPES: bool>(
    text: &'a str,
    names: &[&str; N],
    mut i: usize,
) -> Option<[Option<Raw<'a>>; N]> {
    let b = text.as_bytes();
    let mut out = [None; N];
    // One bit per open container, the innermost lowest: 1 for an object, 0 for an array.
    let (mut kinds, mut depth): (u128, u32) = (1, 1);
    // The asked-for top-level member whose value is being read, and where that value starts.
    let (mut member, mut start) = (None, 0);
    'name: loop {
        b.get(i).filter(|&&c| c == b'"')?;
        let (end, escaped) = string::<U_ESCAPES>(b, i + 1)?;
        if depth == 1 {
            if escaped {
                return None;
            }
            let name = &b[i + 1..end - 1];
            member = names.iter().position(|n| n.as_bytes() == name);
        }
        i = colon::<BREAKS>(b, end)?;
        if depth == 1 {
            start = i;
        }
        'value: loop {
            match *b.get(i)? {
                b'"' => i = string::<U_ESCAPES>(b, i + 1)?.0,
                c @ (b'{' | b'[') => {
                    if depth >= MAX_DEPTH {
                        return None;
                    }
                    let object = c == b'{';
                    i = ws::<BREAKS>(b, i + 1);
                    if b.get(i) == Some(if object { &b'}' } else { &b']' }) {
                        i += 1;
                    } else {
                        depth += 1;
                        kinds = kinds << 1 | u128::from(object);
                        if object {
                            continue 'name;
                        }
                        continue 'value;
                    }
                }
                b't' => i = literal(b, i, b"true")?,
                b'f' => i = literal(b, i, b"false")?,
                b'n' => i = literal(b, i, b"null")?,
                b'-' | b'0'..=b'9' => i = number(b, i)?,
                _ => return None,
            }
            // After a value: a comma and the next one, or the ends of containers.
            loop {
                if depth == 1 {
                    if let Some(k) = member.take() {
                        out[k] = Some(Raw(&text[start..i]));
                    }
                }
                let c;
                (c, i) = token::<BREAKS>(b, i)?;
                let object = kinds & 1 == 1;
                if c == b',' {
                    i = skip_ws::<BREAKS>(b, i);
                    if object {
                        continue 'name;
                    }
                    continue 'value;
                }
                if c != if object { b'}' } else { b']' } {
                    return None;
                }
                depth -= 1;
                kinds >>= 1;
                if depth == 0 {
                    return (ws::<BREAKS>(b, i) == b.len()).then_some(out);
                }
            }
        }
    }
}

/// Past the colon after a member's name (which ends at `i`) and the whitespace after it.
#[inline(always)]
fn colon<const BREAKS: bool>(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i) != Some(&b':') {
        i = ws::<BREAKS>(b, i);
        b.get(i).filter(|&&c| c == b':')?;
    }
    Some(skip_ws::<BREAKS>(b, i + 1))
}

/// The byte at `i` or after the whitespace there, and the place past it.
#[inline(always)]
fn token<const BREAKS: bool>(b: &[u8], mut i: usize) -> Option<(u8, usize)> {
    let mut c = *b.get(i)?;
    if c <= b' ' {
        i = ws::<BREAKS>(b, i);
        c = *b.get(i)?;
    }
    Some((c, i + 1))
}

/// Past the whitespace at `i` (line breaks only where `BREAKS`).
#[inline(always)]
fn ws<const BREAKS: bool>(b: &[u8], mut i: usize) -> usize {
    while let Some(&c) = b.get(i) {
        let blank = c == b' ' || c == b'\t' || (BREAKS && (c == b'\n' || c == b'\r'));
        if c > b' ' || !blank {
            break;
        }
        i += 1;
    }
    i
}

/// [`ws`], for where compact JSON has none: one test when there is none.
#[inline(always)]
fn skip_ws<const BREAKS: bool>(b: &[u8], i: usize) -> usize {
    if b.get(i).is_some_and(|&c| c <= b' ') {
        ws::<BREAKS>(b, i)
    } else {
        i
    }
}

/// From just past a string's opening quote: just past its closing quote, and whether it
/// has escapes (each checked; `\u` escapes only where `U_ESCAPES`).
#[inline(always)]
fn string<const U_ESCAPES: bool>(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    loop {
        i += plain(b.get(i..)?);
        match *b.get(i)? {
            b'"' => return Some((i + 1, escaped)),
            b'\\' => {
                escaped = true;
                match *b.get(i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                    b'u' => {
                        if !U_ESCAPES || !b.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        i += 6;
                    }
                    _ => return None,
                }
            }
            // A control character.
            _ => return None,
        }
    }
}

/// How many bytes of `rest` come before its first quote, backslash or control character
/// (all of them if none does). What comes before is written in a JSON string as it is.
#[inline(always)]
pub(crate) fn plain(rest: &[u8]) -> usize {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        plain_sse2(rest)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        plain_words(rest)
    }
}

/// [`plain`] sixteen bytes at a time, with SSE2 (which every x86-64 processor has).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
#[allow(unsafe_code)]
fn plain_sse2(rest: &[u8]) -> usize {
    #[target_feature(enable = "sse2")]
    fn sixteen(rest: &[u8]) -> usize {
        use std::arch::x86_64::{
            _mm_cmpeq_epi8, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
            _mm_set_epi64x,
        };
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let control = _mm_set1_epi8(0x1f);
        let half = |w: &[u8]| i64::from_le_bytes(std::array::from_fn(|j| w[j]));
        let mut n = 0;
        loop {
            // The last bytes are padded with zeros, a stop just past the end.
            let mut pad = [0; 16];
            let w: &[u8; 16] = match rest.get(n..n + 16).and_then(|w| w.try_into().ok()) {
                Some(w) => w,
                None => {
                    pad[..rest.len() - n].copy_from_slice(&rest[n..]);
                    &pad
                }
            };
            let v = _mm_set_epi64x(half(&w[8..]), half(&w[..8]));
            let stops = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                // Unsigned `v <= 0x1f`: the control characters.
                _mm_cmpeq_epi8(_mm_max_epu8(v, control), control),
            );
            let mask = _mm_movemask_epi8(stops) as u32;
            if mask != 0 {
                return (n + mask.trailing_zeros() as usize).min(rest.len());
            }
            n += 16;
        }
    }
    // SAFETY: compiled only where the target has SSE2 enabled, which is all that `sixteen`
    // requires; it reads no memory but through `rest`'s bounds-checked slices.
    unsafe { sixteen(rest) }
}

/// [`plain`] eight bytes at a time, in plain integer arithmetic.
#[cfg(any(test, not(all(target_arch = "x86_64", target_feature = "sse2"))))]
fn plain_words(rest: &[u8]) -> usize {
    let mut n = 0;
    while let Some(word) = rest.get(n..n + 8).and_then(|w| w.try_into().ok()) {
        let w = words::load(word);
        // Exact up to the first stop, which is all that is read of it.
        let stops = words::equal(w, b'"') | words::equal(w, b'\\') | words::below(w, 0x20);
        if stops != 0 {
            return n + (stops.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    n + rest[n..]
        .iter()
        .position(|&b| STOPS[usize::from(b)])
        .unwrap_or(rest.len() - n)
}

/// Just past `word` at `i`.
#[inline(always)]
fn literal(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    (b.get(i..i + word.len())? == word).then_some(i + word.len())
}

/// Just past the digits at `i`, if any.
#[inline(always)]
fn digits(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

/// Just past the digits at `i`: at least one.
#[inline(always)]
fn some_digits(b: &[u8], i: usize) -> Option<usize> {
    let end = digits(b, i);
    (end > i).then_some(end)
}

/// Just past the number at `i`:
/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
#[inline(always)]
fn number(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match *b.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i = digits(b, i + 1),
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        i = some_digits(b, i + 1)?;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        i = some_digits(b, i)?;
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// A random JSON value, sometimes with odd but valid spellings.
    fn value(rng: &mut StdRng, depth: u32, out: &mut String) {
        let pick = if depth > 6 {
            rng.random_range(0..5)
        } else {
            rng.random_range(0..7)
        };
        match pick {
            0 => out.push_str(["true", "false", "null"][rng.random_range(0..3)]),
            1 => out.push_str(
                [
                    "0",
                    "-0",
                    "12",
                    "-7.25",
                    "1e9",
                    "2E-3",
                    "3.5e+2",
                    "184467440737095516160",
                    "0.000",
                    "-1.0E10",
                ][rng.random_range(0..10)],
            ),
            2..=4 => {
                out.push('"');
                for _ in 0..rng.random_range(0..6) {
                    out.push_str(
                        [
                            "a",
                            "model",
                            "é",
                            "日本",
                            "\\\"",
                            "\\\\",
                            "\\/",
                            "\\n",
                            "\\t",
                            "\\u00e9",
                            "\\uD83D\\uDE00",
                            " ",
                            "{",
                            "]",
                            ",",
                            ":",
                        ][rng.random_range(0..16)],
                    );
                }
                out.push('"');
            }
            5 => {
                out.push('[');
                for k in 0..rng.random_range(0..4) {
                    if k > 0 {
                        out.push_str([",", " , ", ",\n"][rng.random_range(0..3)]);
                    }
                    value(rng, depth + 1, out);
                }
                out.push(']');
            }
            _ => object(rng, depth + 1, out),
        }
    }

    fn object(rng: &mut StdRng, depth: u32, out: &mut String) {
        out.push_str(["{", "{ ", "{\n\t"][rng.random_range(0..3)]);
        for k in 0..rng.random_range(0..5) {
            if k > 0 {
                out.push_str([",", " ,", ", "][rng.random_range(0..3)]);
            }
            let name = ["model", "usage", "choices", "x", "mod\\u0065l", "", "a b"]
                [rng.random_range(0..7)];
            out.push('"');
            out.push_str(name);
            out.push_str(["\":", "\" : ", "\":\r\n"][rng.random_range(0..3)]);
            value(rng, depth, out);
        }
        out.push_str(["}", " }", "\n}"][rng.random_range(0..3)]);
    }

    /// Breaks a text in one of the ways a provider's garbage does.
    fn mutate(rng: &mut StdRng, text: &str) -> String {
        let mut b = text.as_bytes().to_vec();
        if b.is_empty() {
            return String::new();
        }
        let at = rng.random_range(0..b.len());
        match rng.random_range(0..6) {
            0 => b.truncate(at),
            1 => {
                b.remove(at);
            }
            2 => {
                let with = b",]}:\"\\0-e.\x01 x";
                b.insert(at, with[rng.random_range(0..with.len())]);
            }
            3 => {
                let with = b"{[\"\\,:0e-+.tfn\x1f";
                b[at] = with[rng.random_range(0..with.len())];
            }
            4 => b.extend_from_slice([&b" x"[..], b",", b"}", b"]"][rng.random_range(0..4)]),
            _ => {
                b.insert(0, b'[');
            }
        }
        String::from_utf8_lossy(&b).into_owned()
    }

    /// Sixteen and eight bytes at a time find the first stop where one at a time does,
    /// wherever it lies and whatever surrounds it (bytes next to the stops, and above 0x7f,
    /// included).
    #[test]
    fn plain_runs_end_at_the_first_stop() {
        let alphabet = [
            0x00, 0x01, 0x1f, 0x20, 0x21, b'"', 0x23, b'[', b'\\', b']', b'a', 0x7f, 0x80, 0xa2,
            0xdc, 0xff,
        ];
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let len = rng.random_range(0..40);
            let mut text: Vec<u8> = (0..len).map(|_| b'a').collect();
            for _ in 0..rng.random_range(0..4) {
                if len > 0 {
                    text[rng.random_range(0..len)] = alphabet[rng.random_range(0..alphabet.len())];
                }
            }
            let want = text
                .iter()
                .position(|&b| super::STOPS[usize::from(b)])
                .unwrap_or(len);
            assert_eq!(super::plain(&text), want, "{text:?}");
            assert_eq!(super::plain_words(&text), want, "{text:?}");
        }
    }

    /// Wherever the scanner answers, `serde_json` gives the same answer: the same members,
    /// at the same places.
    #[test]
    fn the_scanner_agrees_with_serde_json_or_steps_aside() {
        let names = ["model", "usage", "choices", "x"];
        let mut rng = StdRng::seed_from_u64(0x5eed);
        let (mut answered, mut aside) = (0, 0);
        for round in 0..40_000 {
            let mut text = String::new();
            object(&mut rng, 0, &mut text);
            if round % 2 == 1 {
                text = mutate(&mut rng, &text);
            }
            let slow = super::super::pick_with_serde(&text, names);
            let fast = super::pick::<_, true, true>(&text, &names);
            // Without line breaks between tokens and `\u` escapes: the same answer where
            // the text has neither, and no answer where it has one.
            let strict = super::pick::<_, false, false>(&text, &names);
            let plain = !text.contains(['\n', '\r']) && !text.contains("\\u");
            if plain {
                assert_eq!(strict, fast, "{text:?}");
            } else if !text.contains("\\\\") {
                assert_eq!(strict, None, "{text:?}");
            }
            if !text.contains(['\n', '\r']) {
                assert_eq!(
                    super::pick::<_, false, true>(&text, &names),
                    fast,
                    "{text:?}"
                );
            }
            match fast {
                Some(fast) => {
                    answered += 1;
                    let slow = slow.unwrap_or_else(|e| panic!("{text:?}: serde says {e:?}"));
                    for (f, s) in fast.iter().zip(&slow) {
                        let (f, s) = (f.map(|r| r.get()), s.map(|r| r.get()));
                        assert_eq!(f, s, "{text:?}");
                        if let (Some(f), Some(s)) = (f, s) {
                            assert_eq!(f.as_ptr(), s.as_ptr(), "same place: {text:?}");
                        }
                    }
                }
                None => aside += 1,
            }
        }
        // Valid texts without escaped names are nearly all taken by the scanner.
        assert!(answered > 15_000 && aside > 5_000, "{answered} / {aside}");
    }

    #[test]
    fn what_the_scanner_leaves_to_serde_json() {
        let names = ["a"];
        for text in [
            r#"{"a": 01}"#,
            r#"{"a": 1.}"#,
            r#"{"a": -}"#,
            r#"{"a": .5}"#,
            r#"{"a": 1e}"#,
            r#"{"a": tru}"#,
            r#"{"a": [1,]}"#,
            r#"{"a": {"b" 1}}"#,
            "{\"a\": \"tab\there\"}",
            r#"{"a": "\x"}"#,
            r#"{"a": "\u12G4"}"#,
            r#"{"\u0061": 1}"#,
            r#"{"a": 1,}"#,
            r#"{"a": 1} x"#,
            r#"[{"a": 1}]"#,
            "",
        ] {
            assert!(
                super::pick::<_, true, true>(text, &names).is_none(),
                "{text:?}"
            );
        }
        let deep = format!("{{\"a\": {}1{}}}", "[".repeat(120), "]".repeat(120));
        assert!(
            super::pick::<_, true, true>(&deep, &names).is_none(),
            "deep nesting"
        );
        // Nesting within the limit is answered, and closes where it opened.
        let nested = format!(
            "{{\"a\": {}1{}, \"b\": 2}}",
            "[{\"k\": ".repeat(49),
            "}]".repeat(49)
        );
        let [a] = super::pick::<_, true, true>(&nested, &names).expect("within the limit");
        assert!(a.unwrap().get().starts_with("[{") && a.unwrap().get().ends_with("}]"));
        let [a] =
            super::pick::<_, true, true>(" {\"b\" :[{}], \"a\" : \"x\\\"y\" }\n", &names).unwrap();
        assert_eq!(a.unwrap().get(), r#""x\"y""#);
    }
}
