//! Server-sent events (the `text/event-stream` framing), as the WHATWG spec parses them:
//! `\n`, `\r\n` and `\r` line endings, `:` comment lines, multi-line `data:` fields joined with
//! `\n`, `event:` names, and a blank line that ends an event. `id:` and `retry:` are ignored.
//! The writers below are the one place sluice frames events it sends.

use bytes::{BufMut, BytesMut};
use serde_json::Value;

/// One dispatched event, borrowed from the parser (or from the bytes it was fed) for as long
/// as it is being handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SseEvent<'a> {
    /// The `event:` field, if any.
    pub event: Option<&'a str>,
    /// The `data:` lines joined with `\n`.
    pub data: &'a [u8],
}

/// An event grew past the parser's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTooLarge(pub usize);

/// Why [`SseParser::feed`] stopped: an event past the limit, or the handler's own error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedError<E> {
    TooLarge(EventTooLarge),
    Handler(E),
}

/// What a parser keeps of a buffer between events; a larger one (an exceptional event) is
/// given back, so that an open stream holds no more than this for its framing.
const KEPT_CAPACITY: usize = 4 << 10;

/// Incremental SSE parser. An event whose single `data:` line arrives whole in one slice
/// (the usual case) is handed over where it lies: neither copied nor allocated. (The
/// default parser has a limit of 0: it is the placeholder left while a parser is lent out.)
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    event: String,
    has_event: bool,
    /// The previous slice ended with `\r`: a `\n` starting the next one belongs to it.
    pending_cr: bool,
    max_event: usize,
}

/// A line of the slice being fed, or the parser's own copy of one that came in pieces.
enum Line<'i> {
    Fed(&'i [u8]),
    Held,
}

impl SseParser {
    /// A parser that refuses events (and lines) longer than `max_event` bytes.
    pub fn new(max_event: usize) -> Self {
        SseParser {
            max_event,
            ..SseParser::default()
        }
    }

    /// Feeds bytes; each complete event goes to `on_event` as it is found. Stops at the
    /// first error, the handler's or an event past the limit.
    pub fn feed<'i, E>(
        &mut self,
        mut input: &'i [u8],
        mut on_event: impl FnMut(SseEvent<'_>) -> Result<(), E>,
    ) -> Result<(), FeedError<E>> {
        if self.pending_cr && !input.is_empty() {
            // (An empty slice leaves the question to the next one.)
            self.pending_cr = false;
            if let Some(rest) = input.strip_prefix(b"\n") {
                input = rest;
            }
        }
        // The data of the event under way while it is one line of `input`, not yet copied.
        let mut fed: Option<&'i [u8]> = None;
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', input) {
            let (head, tail) = input.split_at(pos);
            let line = if self.line.is_empty() {
                // The whole line is in this slice: read where it lies.
                Line::Fed(head)
            } else {
                self.line.extend_from_slice(head);
                Line::Held
            };
            self.line_in(line, &mut fed, &mut on_event)?;
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
        if let Some(d) = fed {
            self.data.extend_from_slice(d);
        }
        self.line.extend_from_slice(input);
        self.check_size(0, 0).map_err(FeedError::TooLarge)
    }

    /// One line: checked against the limit, then read.
    fn line_in<'i, E>(
        &mut self,
        line: Line<'i>,
        fed: &mut Option<&'i [u8]>,
        on_event: &mut impl FnMut(SseEvent<'_>) -> Result<(), E>,
    ) -> Result<(), FeedError<E>> {
        let held = fed.map_or(0, <[u8]>::len);
        match line {
            Line::Fed(l) => {
                self.check_size(l.len(), held)
                    .map_err(FeedError::TooLarge)?;
                match field(l) {
                    // The event's first data line: handed over from here if the event ends
                    // in this slice.
                    Field::Data(value) if !self.has_data => {
                        *fed = Some(value);
                        self.has_data = true;
                        Ok(())
                    }
                    f => self.apply(f, fed, on_event).map_err(FeedError::Handler),
                }
            }
            Line::Held => {
                self.check_size(0, held).map_err(FeedError::TooLarge)?;
                let mut line = std::mem::take(&mut self.line);
                let r = self.apply(field(&line), fed, on_event);
                line.clear();
                self.line = line;
                keep_small(&mut self.line);
                r.map_err(FeedError::Handler)
            }
        }
    }

    /// The stream ended. An event that was not terminated by a blank line is dispatched
    /// anyway (some servers omit the final blank line).
    pub fn finish<E>(
        &mut self,
        mut on_event: impl FnMut(SseEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if !self.line.is_empty() {
            // Not a blank line, so it cannot end the event itself.
            let line = std::mem::take(&mut self.line);
            self.apply(field(&line), &mut None, &mut on_event)?;
        }
        self.dispatch(&mut None, &mut on_event)
    }

    /// The line so far (with `more` bytes of it not yet copied) and the event's data (with
    /// `held` bytes of it not yet copied) are within the limit.
    fn check_size(&self, more: usize, held: usize) -> Result<(), EventTooLarge> {
        if self.line.len() + more + self.data.len() + held > self.max_event {
            return Err(EventTooLarge(self.max_event));
        }
        Ok(())
    }

    /// Acts on one field; `fed` is the event's data while it has not been copied.
    fn apply<E>(
        &mut self,
        f: Field<'_>,
        fed: &mut Option<&[u8]>,
        on_event: &mut impl FnMut(SseEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        match f {
            Field::Blank => return self.dispatch(fed, on_event),
            Field::Data(value) => {
                if self.has_data {
                    if let Some(d) = fed.take() {
                        self.data.extend_from_slice(d);
                    }
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            Field::Event(value) => {
                self.event.clear();
                self.event.push_str(&String::from_utf8_lossy(value));
                self.has_event = true;
            }
            Field::Other => {}
        }
        Ok(())
    }

    /// A blank line (or the end of the stream): the event, if it has data, goes to the
    /// handler.
    fn dispatch<E>(
        &mut self,
        fed: &mut Option<&[u8]>,
        on_event: &mut impl FnMut(SseEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let named = std::mem::take(&mut self.has_event);
        if !std::mem::take(&mut self.has_data) {
            return Ok(());
        }
        let data = fed.take().unwrap_or(&self.data);
        let r = on_event(SseEvent {
            event: named.then_some(self.event.as_str()),
            data,
        });
        self.data.clear();
        keep_small(&mut self.data);
        if self.event.capacity() > KEPT_CAPACITY {
            self.event = String::new();
        }
        r
    }
}

/// What a line is, per the spec: a blank line ends an event, `:` starts a comment, and a
/// field name runs to the first colon (one space after it is not part of the value).
enum Field<'a> {
    Blank,
    Data(&'a [u8]),
    Event(&'a [u8]),
    Other,
}

fn field(line: &[u8]) -> Field<'_> {
    if line.is_empty() {
        return Field::Blank;
    }
    let (name, value) = match memchr::memchr(b':', line) {
        Some(i) => {
            let v = &line[i + 1..];
            (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
        }
        None => (line, &b""[..]),
    };
    match name {
        b"data" => Field::Data(value),
        b"event" => Field::Event(value),
        // Comments (an empty name) and the fields sluice ignores.
        _ => Field::Other,
    }
}

/// Gives back a buffer's memory when an exceptional event made it large.
pub(crate) fn keep_small(v: &mut Vec<u8>) {
    if v.capacity() > KEPT_CAPACITY {
        *v = Vec::new();
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

    /// An event as the tests compare them: name and data, owned.
    type Owned = (Option<String>, Vec<u8>);

    fn owned(e: SseEvent<'_>) -> Owned {
        (e.event.map(str::to_string), e.data.to_vec())
    }

    fn parse_all(chunks: &[&[u8]]) -> Vec<Owned> {
        let mut p = SseParser::new(1 << 20);
        let mut out = Vec::new();
        let mut push = |e: SseEvent<'_>| {
            out.push(owned(e));
            Ok::<(), ()>(())
        };
        for c in chunks {
            p.feed(c, &mut push).unwrap();
        }
        p.finish(&mut push).unwrap();
        out
    }

    fn ev(event: Option<&str>, data: &str) -> Owned {
        (event.map(str::to_string), data.as_bytes().to_vec())
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
            for j in i..=STREAM.len() {
                let (b, c) = b.split_at(j - i);
                assert_eq!(parse_all(&[a, b, c]), whole, "split at {i} and {j}");
            }
        }
        let singles: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(parse_all(&singles), whole);
    }

    #[test]
    fn unterminated_last_event_is_dispatched() {
        assert_eq!(parse_all(&[b"data: x"]), vec![ev(None, "x")]);
        assert_eq!(parse_all(&[b"data: x\n"]), vec![ev(None, "x")]);
        assert_eq!(
            parse_all(&[b"event: e\ndata: x\ndata: y"]),
            vec![ev(Some("e"), "x\ny")]
        );
    }

    #[test]
    fn event_without_data_is_not_dispatched() {
        assert!(parse_all(&[b"event: ping\n\n"]).is_empty());
        // Nor does its name stay for the next event.
        assert_eq!(
            parse_all(&[b"event: ping\n\ndata: x\n\n"]),
            vec![ev(None, "x")]
        );
    }

    #[test]
    fn an_event_whose_data_line_arrived_whole_is_handed_over_in_place() {
        let input = b"data: {\"a\":1}\n\n";
        let mut p = SseParser::new(1 << 20);
        let mut seen = Vec::new();
        p.feed(input, |e: SseEvent<'_>| {
            seen.push(e.data.as_ptr() as usize - input.as_ptr() as usize);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(seen, vec![6], "the data is borrowed from the input");
        assert_eq!(p.data.capacity(), 0, "nothing was copied");
    }

    #[test]
    fn the_handlers_error_stops_the_feed() {
        let mut p = SseParser::new(1 << 20);
        let mut n = 0;
        let r = p.feed(b"data: 1\n\ndata: 2\n\ndata: 3\n\n", |e: SseEvent<'_>| {
            n += 1;
            if e.data == b"2" {
                Err("stop")
            } else {
                Ok(())
            }
        });
        assert_eq!(r, Err(FeedError::Handler("stop")));
        assert_eq!(n, 2);
    }

    #[test]
    fn oversize_event_is_refused() {
        let mut p = SseParser::new(16);
        let ok = |_: SseEvent<'_>| Ok::<(), ()>(());
        assert!(p.feed(b"data: 0123456789", ok).is_ok());
        assert_eq!(
            p.feed(b"0123456789", ok),
            Err(FeedError::TooLarge(EventTooLarge(16)))
        );
        // A data line read in place counts as much as a copied one.
        let mut p = SseParser::new(16);
        assert_eq!(
            p.feed(b"data: 0123456789\ndata: 0123456789\n", ok),
            Err(FeedError::TooLarge(EventTooLarge(16)))
        );
        let mut p = SseParser::new(16);
        assert!(p.feed(b"data: 0123456789\n", ok).is_ok());
        assert_eq!(
            p.feed(b"data: 01234567\n", ok),
            Err(FeedError::TooLarge(EventTooLarge(16)))
        );
    }

    /// Random streams — named and unnamed events, several data lines, comments and ignored
    /// fields, any line ending — cut into random pieces (empty ones included) give the
    /// events they were made of.
    #[test]
    fn random_streams_in_random_pieces() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(0x55e);
        let word = |rng: &mut StdRng| -> String {
            let n = rng.random_range(0..12);
            (0..n)
                .map(|_| *b" :{}\"a1_-xyz".get(rng.random_range(0..12)).unwrap() as char)
                .collect()
        };
        for round in 0..3000 {
            let mut wire = Vec::new();
            let mut expected = Vec::new();
            // A line and its ending; a blank line after a CR does not start with LF (CR LF
            // would be one ending).
            let mut after_cr = false;
            let mut line = |wire: &mut Vec<u8>, rng: &mut StdRng, text: &[u8]| {
                wire.extend_from_slice(text);
                let lf_allowed = !(text.is_empty() && after_cr);
                let ending: &[u8] = match rng.random_range(0..3) {
                    0 if lf_allowed => b"\n",
                    0 | 1 => b"\r\n",
                    _ => b"\r",
                };
                wire.extend_from_slice(ending);
                after_cr = ending == b"\r";
            };
            for _ in 0..rng.random_range(0..5) {
                let name = rng
                    .random_bool(0.4)
                    .then(|| format!("e{}", word(&mut rng).len()));
                if let Some(n) = &name {
                    line(&mut wire, &mut rng, format!("event: {n}").as_bytes());
                }
                let mut data: Vec<String> = Vec::new();
                for _ in 0..rng.random_range(0..4) {
                    if rng.random_bool(0.2) {
                        line(&mut wire, &mut rng, b": comment");
                    }
                    let d = word(&mut rng);
                    line(&mut wire, &mut rng, format!("data: {d}").as_bytes());
                    data.push(d);
                }
                if rng.random_bool(0.2) {
                    line(&mut wire, &mut rng, b"id: 1");
                }
                line(&mut wire, &mut rng, b"");
                if !data.is_empty() {
                    expected.push((name, data.join("\n").into_bytes()));
                }
            }
            let mut pieces = Vec::new();
            let mut rest = &wire[..];
            while !rest.is_empty() {
                let n = rng.random_range(0..=rest.len().min(24));
                let (a, b) = rest.split_at(n);
                pieces.push(a);
                rest = b;
            }
            assert_eq!(
                parse_all(&pieces),
                expected,
                "round {round}: {:?} in {pieces:?}",
                String::from_utf8_lossy(&wire)
            );
        }
    }

    #[test]
    fn a_large_event_does_not_leave_its_memory_behind() {
        let mut p = SseParser::new(1 << 20);
        let big = vec![b'x'; 100 << 10];
        let mut sizes = Vec::new();
        let mut push = |e: SseEvent<'_>| {
            sizes.push(e.data.len());
            Ok::<(), ()>(())
        };
        p.feed(b"data: ", &mut push).unwrap();
        p.feed(&big, &mut push).unwrap();
        p.feed(b"\ndata: ", &mut push).unwrap();
        p.feed(&big, &mut push).unwrap();
        p.feed(b"\n\n", &mut push).unwrap();
        assert_eq!(sizes, vec![(200 << 10) + 1]);
        assert!(p.line.capacity() <= KEPT_CAPACITY);
        assert!(p.data.capacity() <= KEPT_CAPACITY);
    }
}
