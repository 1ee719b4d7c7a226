//! The fast path of [`super::pick`]: one pass over the bytes that validates JSON's grammar
//! and notes where the asked-for top-level members lie, without a deserialiser's machinery
//! per value (several times cheaper on the answers and chunks sluice relays).
//!
//! It answers only when it is sure to agree with `serde_json`: anything it does not take
//! plainly — an error of any kind, a member name written with escapes, nesting deeper than
//! [`MAX_DEPTH`] — makes it step aside (`None`), and the caller asks `serde_json`, whose
//! answer (and words for an error) stand.

use super::Raw;
use crate::core::words;

/// Deeper than this is left to `serde_json` (whose own limit is 128).
const MAX_DEPTH: u32 = 100;

/// Bytes that end a run of plain string content: the quote, the backslash and the control
/// characters (which JSON does not allow unescaped).
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
/// repeated name), or `None` to leave the text to `serde_json`.
pub(super) fn pick<'a, const N: usize>(
    text: &'a str,
    names: &[&str; N],
) -> Option<[Option<Raw<'a>>; N]> {
    let mut s = Scan {
        b: text.as_bytes(),
        i: 0,
    };
    let mut out = [None; N];
    s.ws();
    s.eat(b'{')?;
    s.ws();
    if s.b.get(s.i) == Some(&b'}') {
        s.i += 1;
    } else {
        loop {
            let name = s.name()?;
            s.ws();
            s.eat(b':')?;
            s.ws();
            let start = s.i;
            s.value(1)?;
            if let Some(k) = names.iter().position(|n| n.as_bytes() == name) {
                out[k] = Some(Raw(&text[start..s.i]));
            }
            s.ws();
            match s.next()? {
                b',' => s.ws(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.ws();
    (s.i == s.b.len()).then_some(out)
}

/// How many bytes of `rest` come before its first quote, backslash or control character
/// (all of them if none does): eight at a time, then one by one. What comes before is
/// written in a JSON string as it is.
pub(crate) fn plain(rest: &[u8]) -> usize {
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

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn next(&mut self) -> Option<u8> {
        let c = *self.b.get(self.i)?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// A member name without escapes, its bytes between the quotes.
    fn name(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        self.i += self.plain();
        let end = self.i;
        self.eat(b'"')?;
        Some(&self.b[start..end])
    }

    fn value(&mut self, depth: u32) -> Option<()> {
        match *self.b.get(self.i)? {
            b'"' => {
                self.i += 1;
                self.string_rest()
            }
            b'{' => self.container(depth + 1, b'}', true),
            b'[' => self.container(depth + 1, b']', false),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// An object (`keyed`) or an array, from its opening bracket.
    fn container(&mut self, depth: u32, close: u8, keyed: bool) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.i += 1;
        self.ws();
        if self.b.get(self.i) == Some(&close) {
            self.i += 1;
            return Some(());
        }
        loop {
            if keyed {
                self.eat(b'"')?;
                self.string_rest()?;
                self.ws();
                self.eat(b':')?;
                self.ws();
            }
            self.value(depth)?;
            self.ws();
            match self.next()? {
                b',' => self.ws(),
                c if c == close => return Some(()),
                _ => return None,
            }
        }
    }

    /// The rest of a string after its opening quote, escapes checked.
    fn string_rest(&mut self) -> Option<()> {
        loop {
            self.i += self.plain();
            match self.next()? {
                b'"' => return Some(()),
                b'\\' => match self.next()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        let hex = self.b.get(self.i..self.i + 4)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        self.i += 4;
                    }
                    _ => return None,
                },
                // A control character.
                _ => return None,
            }
        }
    }

    /// How many bytes of plain string content follow (up to a quote, a backslash, a
    /// control character or the end).
    fn plain(&self) -> usize {
        plain(&self.b[self.i.min(self.b.len())..])
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + word.len())? != word {
            return None;
        }
        self.i += word.len();
        Some(())
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Option<()> {
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match *self.b.get(self.i)? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            self.some_digits()?;
        }
        Some(())
    }

    fn digits(&mut self) {
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.i;
        self.digits();
        (self.i > start).then_some(())
    }
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

    /// Eight bytes at a time finds the first stop where one at a time does, wherever it
    /// lies and whatever surrounds it (bytes next to the stops, and above 0x7f, included).
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
            match super::pick(&text, &names) {
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
            assert!(super::pick(text, &names).is_none(), "{text:?}");
        }
        let deep = format!("{{\"a\": {}1{}}}", "[".repeat(120), "]".repeat(120));
        assert!(super::pick(&deep, &names).is_none(), "deep nesting");
        let [a] = super::pick(" {\"b\" :[{}], \"a\" : \"x\\\"y\" }\n", &names).unwrap();
        assert_eq!(a.unwrap().get(), r#""x\"y""#);
    }
}
