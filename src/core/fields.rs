//! A message's header fields as read from an HTTP/1.1 peer (a client's request, a provider's
//! answer): the header's bytes copied once, names lowercased in the copy, each field two
//! ranges into it. A lookup compares a few short names; nothing is parsed, hashed or
//! allocated per field (an `http::HeaderMap` does all three).

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use crate::core::words;

/// The fields of one header, in the order they came.
#[derive(Default)]
pub struct HeaderFields {
    bytes: Bytes,
    /// Name and value of each field, in `bytes`.
    spans: Vec<(Range<u32>, Range<u32>)>,
}

/// Collects the fields of a header being parsed, by where they lie in it.
pub struct Builder {
    spans: Vec<(Range<u32>, Range<u32>)>,
}

impl Builder {
    pub fn new(fields: usize) -> Builder {
        Builder {
            spans: Vec::with_capacity(fields),
        }
    }

    /// Adds a field whose name and value a parser found in `header` (slices of it; an empty
    /// value may lie elsewhere). `false`: the field is not in `header`, or its value has a
    /// byte no header value may have (a control character other than tab, or DEL), as
    /// `http::HeaderValue` would refuse it.
    pub fn push(&mut self, header: &[u8], name: &[u8], value: &[u8]) -> bool {
        let at = |s: &[u8]| (s.as_ptr() as usize).wrapping_sub(header.as_ptr() as usize);
        let name = at(name)..at(name).wrapping_add(name.len());
        let value = if value.is_empty() {
            name.end..name.end
        } else {
            at(value)..at(value).wrapping_add(value.len())
        };
        if name.end > header.len() || value.end > header.len() || !is_value(&header[value.clone()])
        {
            return false;
        }
        let span = |r: Range<usize>| r.start as u32..r.end as u32;
        self.spans.push((span(name), span(value)));
        true
    }

    /// Leaves out every field named `name` (any case).
    pub fn remove(&mut self, header: &[u8], name: &str) {
        self.spans.retain(|(n, _)| {
            !header[n.start as usize..n.end as usize].eq_ignore_ascii_case(name.as_bytes())
        });
    }

    /// The fields, with a copy of `header` whose names are lowercased.
    pub fn finish(self, header: &[u8]) -> HeaderFields {
        let mut bytes = BytesMut::from(header);
        for (n, _) in &self.spans {
            bytes[n.start as usize..n.end as usize].make_ascii_lowercase();
        }
        HeaderFields {
            bytes: bytes.freeze(),
            spans: self.spans,
        }
    }
}

impl HeaderFields {
    /// The first field named `name` (lowercase) at or after the `from`th: its place and value.
    pub fn find(&self, name: &str, from: usize) -> Option<(usize, &[u8])> {
        let spans = self.spans.get(from..)?;
        let i = spans
            .iter()
            .position(|(n, _)| self.at(n) == name.as_bytes())?;
        Some((from + i, self.at(&spans[i].1)))
    }

    /// The first value of the field `name` (lowercase).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.find(name, 0).map(|(_, v)| v)
    }

    /// How many fields there are (for tests).
    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.spans.len()
    }

    /// The bytes at `r` of the header.
    fn at(&self, r: &Range<u32>) -> &[u8] {
        &self.bytes[r.start as usize..r.end as usize]
    }
}

/// Whether `value` may be a header field's value: no control character other than tab, no
/// DEL (what `http::HeaderValue` refuses). Eight bytes at a time; a word holding a tab or
/// one of those is looked at byte by byte.
pub fn is_value(value: &[u8]) -> bool {
    let byte_ok = |b: &u8| *b == b'\t' || (*b >= 0x20 && *b != 0x7f);
    let mut chunks = value.chunks_exact(8);
    for word in &mut chunks {
        let w = words::load(word.try_into().unwrap_or(&[0; 8]));
        if words::below(w, 0x20) | words::equal(w, 0x7f) != 0 && !word.iter().all(byte_ok) {
            return false;
        }
    }
    chunks.remainder().iter().all(byte_ok)
}

/// A header value as text when it is visible ASCII (tabs allowed), as
/// `http::HeaderValue::to_str` reads it.
pub fn text(value: &[u8]) -> Option<&str> {
    if value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_as_byte_by_byte() {
        let slow = |v: &[u8]| v.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f));
        // Every byte at every place of texts of 0..=20 bytes, among plain ones and high ones.
        for len in 0..=20 {
            for at in 0..len {
                for b in 0..=255u8 {
                    for fill in [b'a', 0xc3, b' ', b'\t'] {
                        let mut v = vec![fill; len];
                        v[at] = b;
                        assert_eq!(is_value(&v), slow(&v), "{v:?}");
                    }
                }
            }
        }
        assert!(is_value(b"Bearer sk-test-\tkey"));
        assert!(!is_value(b"Bearer sk-test-key\r\nx-injected: 1"));
        assert!(is_value("caf\u{e9} \u{1f600}".as_bytes()));
    }

    #[test]
    fn names_are_lowercased_and_every_value_is_kept_in_order() {
        let header = b"X-A: 1\r\nx-a: 2\r\nHost: h\r\nContent-Length: 3\r\n";
        let mut b = Builder::new(4);
        assert!(b.push(header, &header[0..3], &header[5..6]));
        assert!(b.push(header, &header[8..11], &header[13..14]));
        assert!(b.push(header, &header[16..20], &header[22..23]));
        assert!(b.push(header, &header[25..39], &header[41..42]));
        b.remove(header, "content-length");
        let f = b.finish(header);
        assert_eq!(f.find("x-a", 0), Some((0, &b"1"[..])));
        assert_eq!(f.find("x-a", 1), Some((1, &b"2"[..])));
        assert_eq!(f.find("x-a", 2), None);
        assert_eq!(f.get("host"), Some(&b"h"[..]));
        assert_eq!(f.get("Host"), None, "names are asked for in lowercase");
        assert_eq!(f.get("content-length"), None, "removed");
        assert_eq!(f.count(), 3);
        let bad = b"a: x\x01y";
        assert!(!Builder::new(1).push(bad, &bad[0..1], &bad[3..6]));
        let odd = b"a: x\ty\xff";
        assert!(Builder::new(1).push(odd, &odd[0..1], &odd[3..7]));
        assert!(
            !Builder::new(1).push(odd, b"a", b"x"),
            "a field that is not in the header"
        );
    }
}
