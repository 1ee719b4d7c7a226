//! Server-sent events (the `text/event-stream` framing), as the WHATWG spec parses them:
//! `\n`, `\r\n` and `\r` line endings, `:` comment lines, multi-line `data:` fields joined with
//! `\n`, `event:` names, and a blank line that ends an event. `id:` and `retry:` are ignored.
//! The writers below are the one place sluice frames events it sends.

use bytes::{BufMut, BytesMut};
use serde_json::Value;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: Vec<u8>,
}

/// An event grew past the parser's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTooLarge(pub usize);

/// Incremental SSE parser.
#[derive(Debug)]
pub struct SseParser {
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    event: Option<String>,
    /// The previous slice ended with `\r`: a `\n` starting the next one belongs to it.
    pending_cr: bool,
    max_event: usize,
}

impl SseParser {
    /// A parser that refuses events (and lines) longer than `max_event` bytes.
    pub fn new(max_event: usize) -> Self {
        SseParser {
            line: Vec::new(),
            data: Vec::new(),
            has_data: false,
            event: None,
            pending_cr: false,
            max_event,
        }
    }

    /// Feeds bytes; complete events are appended to `out`.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<SseEvent>) -> Result<(), EventTooLarge> {
        if self.pending_cr {
            self.pending_cr = false;
            if let Some(rest) = input.strip_prefix(b"\n") {
                input = rest;
            }
        }
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', input) {
            let (head, tail) = input.split_at(pos);
            if self.line.is_empty() {
                // The whole line is in this slice: read where it lies, not copied.
                self.check_size(head.len())?;
                self.process_line(head, out);
            } else {
                self.line.extend_from_slice(head);
                self.check_size(0)?;
                let line = std::mem::take(&mut self.line);
                self.process_line(&line, out);
                self.line = line;
                self.line.clear();
            }
            input = if tail[0] == b'\r' {
                match tail.get(1) {
                    Some(b'\n') => &tail[2..],
                    Some(_) => &tail[1..],
                    None => {
                        self.pending_cr = true;
                        &tail[1..]
                    }
                }
            } else {
                &tail[1..]
            };
        }
        self.line.extend_from_slice(input);
        self.check_size(0)
    }

    /// The stream ended. An event that was not terminated by a blank line is dispatched
    /// anyway (some servers omit the final blank line).
    pub fn finish(&mut self) -> Option<SseEvent> {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            let mut out = Vec::new();
            self.process_line(&line, &mut out);
            if let Some(ev) = out.pop() {
                return Some(ev);
            }
        }
        self.dispatch()
    }

    /// The line so far (with `more` bytes of it not yet copied) and the event's data are
    /// within the limit.
    fn check_size(&self, more: usize) -> Result<(), EventTooLarge> {
        if self.line.len() + more + self.data.len() > self.max_event {
            return Err(EventTooLarge(self.max_event));
        }
        Ok(())
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if let Some(ev) = self.dispatch() {
                out.push(ev);
            }
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {}
        }
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        Some(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
        })
    }
}

/// Largest upstream stream event (or NDJSON line) held while it is incomplete.
pub const MAX_EVENT_BYTES: usize = 4 << 20;

/// Appends one event whose data is already encoded: `event:` when named, then one `data:`
/// line per line of `data` (a multi-line payload stays one event).
pub fn write_data(out: &mut BytesMut, name: Option<&str>, data: &[u8]) {
    if let Some(n) = name {
        out.put_slice(b"event: ");
        out.put_slice(n.as_bytes());
        out.put_slice(b"\n");
    }
    for line in data.split(|&b| b == b'\n') {
        out.put_slice(b"data: ");
        out.put_slice(line);
        out.put_slice(b"\n");
    }
    out.put_slice(b"\n");
}

/// Appends one `data:` event.
pub fn write_event(out: &mut BytesMut, v: &Value) {
    out.put_slice(b"data: ");
    serde_json::to_writer(out.writer(), v).expect("JSON values serialise");
    out.put_slice(b"\n\n");
}

/// Appends one named event (`event: NAME\ndata: JSON\n\n`).
pub fn write_named(out: &mut BytesMut, name: &str, v: &Value) {
    out.put_slice(b"event: ");
    out.put_slice(name.as_bytes());
    out.put_slice(b"\ndata: ");
    serde_json::to_writer(out.writer(), v).expect("JSON values serialise");
    out.put_slice(b"\n\n");
}

/// Appends OpenAI's end-of-stream marker, `data: [DONE]`.
pub fn write_done(out: &mut BytesMut) {
    out.put_slice(b"data: [DONE]\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out).unwrap();
        }
        out.extend(p.finish());
        out
    }

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: event.map(str::to_string),
            data: data.as_bytes().to_vec(),
        }
    }

    const STREAM: &[u8] = b": comment\r\nevent: message_start\r\ndata: {\"a\":1}\r\n\r\n\
data: line1\ndata: line2\n\nid: 7\nretry: 10\ndata:no-space\r\rdata: [DONE]\n\n";

    #[test]
    fn parses_fields_and_line_endings() {
        let evs = parse_all(&[STREAM]);
        assert_eq!(
            evs,
            vec![
                ev(Some("message_start"), "{\"a\":1}"),
                ev(None, "line1\nline2"),
                ev(None, "no-space"),
                ev(None, "[DONE]"),
            ]
        );
    }

    #[test]
    fn identical_when_split_at_every_byte() {
        let whole = parse_all(&[STREAM]);
        for i in 0..=STREAM.len() {
            let (a, b) = STREAM.split_at(i);
            assert_eq!(parse_all(&[a, b]), whole, "split at {i}");
        }
        let singles: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(parse_all(&singles), whole);
    }

    #[test]
    fn unterminated_last_event_is_dispatched() {
        assert_eq!(parse_all(&[b"data: x"]), vec![ev(None, "x")]);
        assert_eq!(parse_all(&[b"data: x\n"]), vec![ev(None, "x")]);
    }

    #[test]
    fn event_without_data_is_not_dispatched() {
        assert!(parse_all(&[b"event: ping\n\n"]).is_empty());
    }

    #[test]
    fn oversize_event_is_refused() {
        let mut p = SseParser::new(16);
        let mut out = Vec::new();
        assert!(p.feed(b"data: 0123456789", &mut out).is_ok());
        assert_eq!(p.feed(b"0123456789", &mut out), Err(EventTooLarge(16)));
    }
}
