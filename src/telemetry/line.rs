//! A JSON object written member by member into a byte buffer — the access log's line —
//! without a serialiser's per-member machinery or the strings it would format first.
//! Member names are the caller's constants and written as they are; values are escaped as
//! `serde_json` escapes them.

use std::cell::Cell;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// An object being written into `buf`; [`Line::end`] closes it.
pub struct Line<'a> {
    buf: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Line<'a> {
    pub fn new(buf: &'a mut Vec<u8>) -> Self {
        buf.push(b'{');
        Line { buf, first: true }
    }

    /// Writes `"name":` and hands the buffer over for the value. The writers are inlined:
    /// called with a literal name, its copy is a few moves, not a call to `memcpy`.
    #[inline(always)]
    pub fn member(&mut self, name: &str) -> &mut Vec<u8> {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        self.buf.push(b'"');
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b"\":");
        self.buf
    }

    #[inline(always)]
    pub fn str(&mut self, name: &str, value: &str) {
        string(self.member(name), value);
    }

    #[inline(always)]
    pub fn opt_str(&mut self, name: &str, value: Option<&str>) {
        match value {
            Some(v) => self.str(name, v),
            None => self.member(name).extend_from_slice(b"null"),
        }
    }

    #[inline(always)]
    pub fn num(&mut self, name: &str, value: u64) {
        let mut digits = itoa::Buffer::new();
        self.member(name)
            .extend_from_slice(digits.format(value).as_bytes());
    }

    #[inline(always)]
    pub fn opt_num(&mut self, name: &str, value: Option<u64>) {
        match value {
            Some(v) => self.num(name, v),
            None => self.member(name).extend_from_slice(b"null"),
        }
    }

    #[inline(always)]
    pub fn bool(&mut self, name: &str, value: bool) {
        let text: &[u8] = if value { b"true" } else { b"false" };
        self.member(name).extend_from_slice(text);
    }

    /// An IP address and port, quoted. IPv4 is written digit by digit (the common case:
    /// `Display` costs a formatter per octet); IPv6 as `Display` writes it.
    pub fn addr(&mut self, name: &str, addr: &std::net::SocketAddr) {
        let out = self.member(name);
        out.push(b'"');
        match addr {
            std::net::SocketAddr::V4(a) => {
                let mut digits = itoa::Buffer::new();
                for (i, octet) in a.ip().octets().into_iter().enumerate() {
                    if i > 0 {
                        out.push(b'.');
                    }
                    out.extend_from_slice(digits.format(octet).as_bytes());
                }
                out.push(b':');
                out.extend_from_slice(digits.format(a.port()).as_bytes());
            }
            std::net::SocketAddr::V6(a) => {
                let _ = write!(out, "{a}");
            }
        }
        out.push(b'"');
    }

    pub fn end(self) {
        self.buf.push(b'}');
    }
}

/// `s` as a JSON string.
pub fn string(buf: &mut Vec<u8>, s: &str) {
    if crate::core::members::plain(s.as_bytes()) < s.len() {
        serde_json::to_writer(&mut *buf, s).expect("a string serialises into memory");
        return;
    }
    buf.push(b'"');
    buf.extend_from_slice(s.as_bytes());
    buf.push(b'"');
}

/// `at` as an RFC 3339 UTC timestamp with milliseconds, quoted (what
/// `humantime::format_rfc3339_millis` writes). The date and time to the second are formatted
/// once per second per thread.
pub fn timestamp(buf: &mut Vec<u8>, at: SystemTime) {
    thread_local! {
        static SECOND: Cell<Option<(u64, [u8; 19])>> = const { Cell::new(None) };
    }
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let prefix = match SECOND.get() {
        Some((s, prefix)) if s == secs => Some(prefix),
        _ => {
            let text = humantime::format_rfc3339_seconds(at).to_string();
            // `YYYY-MM-DDTHH:MM:SSZ`; another shape (a year past 9999) is written whole.
            let prefix: Option<[u8; 19]> = text
                .strip_suffix('Z')
                .and_then(|t| t.as_bytes().try_into().ok());
            if let Some(p) = prefix {
                SECOND.set(Some((secs, p)));
            }
            prefix
        }
    };
    let Some(prefix) = prefix else {
        let _ = write!(buf, "\"{}\"", humantime::format_rfc3339_millis(at));
        return;
    };
    let ms = since.subsec_millis();
    buf.push(b'"');
    buf.extend_from_slice(&prefix);
    buf.extend_from_slice(&[
        b'.',
        b'0' + (ms / 100) as u8,
        b'0' + (ms / 10 % 10) as u8,
        b'0' + (ms % 10) as u8,
        b'Z',
        b'"',
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn members_are_valid_json_with_their_values() {
        let mut buf = Vec::new();
        let mut line = Line::new(&mut buf);
        line.str("plain", "gpt-4o-mini");
        line.str("odd", "a \"quoted\" \\ name\n\u{1}é");
        line.opt_str("none", None);
        line.num("n", u64::MAX);
        line.opt_num("m", Some(0));
        line.opt_num("absent", None);
        line.bool("yes", true);
        line.bool("no", false);
        line.end();
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"plain": "gpt-4o-mini", "odd": "a \"quoted\" \\ name\n\u{1}é",
                "none": null, "n": u64::MAX, "m": 0, "absent": null, "yes": true, "no": false})
        );
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys[..3], ["plain", "odd", "none"], "in the order written");
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for a in [
            "127.0.0.1:8080",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "10.2.30.104:443",
            "[::1]:8080",
            "[2001:db8::ff00:42:8329]:1",
            "[::ffff:192.0.2.128]:80",
        ] {
            let addr: std::net::SocketAddr = a.parse().unwrap();
            let mut buf = Vec::new();
            let mut line = Line::new(&mut buf);
            line.addr("client", &addr);
            line.end();
            assert_eq!(
                String::from_utf8(buf).unwrap(),
                format!("{{\"client\":\"{addr}\"}}")
            );
        }
    }

    #[test]
    fn timestamps_are_humantimes_to_the_millisecond() {
        let base = UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        for offset_ms in [0, 7, 99, 100, 999, 1000, 1001, 86_399_999, 3_000_000_123] {
            let at = base + Duration::from_millis(offset_ms);
            let mut buf = Vec::new();
            timestamp(&mut buf, at);
            let expected = format!("\"{}\"", humantime::format_rfc3339_millis(at));
            assert_eq!(String::from_utf8(buf).unwrap(), expected);
        }
    }
}
