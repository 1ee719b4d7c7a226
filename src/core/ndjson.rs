//! Newline-delimited JSON (`application/x-ndjson`, Ollama's stream framing): one JSON value
//! per line, `\n` or `\r\n` line endings, blank lines skipped.

use super::sse::{keep_small, EventTooLarge, FeedError};

/// Incremental NDJSON line splitter. A line that arrives whole in one slice (the usual case)
/// is handed over where it lies.
#[derive(Debug)]
pub struct NdjsonParser {
    line: Vec<u8>,
    max_line: usize,
}

impl NdjsonParser {
    /// A parser that refuses lines longer than `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        NdjsonParser {
            line: Vec::new(),
            max_line,
        }
    }

    /// Feeds bytes; every complete, non-blank line goes to `on_line` (without its ending,
    /// nor the whitespace around it) as it is found. Stops at the first error, the handler's
    /// or a line past the limit.
    pub fn feed<E>(
        &mut self,
        mut input: &[u8],
        mut on_line: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), FeedError<E>> {
        while let Some(pos) = memchr::memchr(b'\n', input) {
            let (head, tail) = input.split_at(pos);
            input = &tail[1..];
            if self.line.is_empty() {
                self.check_size(head.len()).map_err(FeedError::TooLarge)?;
                dispatch(head, &mut on_line).map_err(FeedError::Handler)?;
                continue;
            }
            self.line.extend_from_slice(head);
            self.check_size(0).map_err(FeedError::TooLarge)?;
            let r = dispatch(&self.line, &mut on_line);
            self.line.clear();
            keep_small(&mut self.line);
            r.map_err(FeedError::Handler)?;
        }
        self.line.extend_from_slice(input);
        self.check_size(0).map_err(FeedError::TooLarge)
    }

    /// The stream ended: a last line without its newline is dispatched anyway.
    pub fn finish<E>(&mut self, mut on_line: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        let line = std::mem::take(&mut self.line);
        dispatch(&line, &mut on_line)
    }

    /// The line so far, with `more` bytes of it not yet copied, is within the limit.
    fn check_size(&self, more: usize) -> Result<(), EventTooLarge> {
        if self.line.len() + more > self.max_line {
            Err(EventTooLarge(self.max_line))
        } else {
            Ok(())
        }
    }
}

fn dispatch<E>(line: &[u8], on_line: &mut impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
    let trimmed = line.trim_ascii();
    if trimmed.is_empty() {
        return Ok(());
    }
    on_line(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut p = NdjsonParser::new(1024);
        let mut out = Vec::new();
        let mut push = |l: &[u8]| {
            out.push(l.to_vec());
            Ok::<(), ()>(())
        };
        for c in chunks {
            p.feed(c, &mut push).unwrap();
        }
        p.finish(&mut push).unwrap();
        out
    }

    #[test]
    fn splits_lines_across_any_boundary() {
        let input = b"{\"a\":1}\r\n\n{\"b\":\"\xc3\xa9\"}\n  \n{\"c\":3}";
        let whole = lines(&[input]);
        assert_eq!(
            whole,
            vec![
                b"{\"a\":1}".to_vec(),
                b"{\"b\":\"\xc3\xa9\"}".to_vec(),
                b"{\"c\":3}".to_vec()
            ]
        );
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(lines(&[a, b]), whole, "split at {i}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(lines(&bytes), whole);
    }

    #[test]
    fn refuses_oversize_lines() {
        let ok = |_: &[u8]| Ok::<(), ()>(());
        let mut p = NdjsonParser::new(8);
        assert!(p.feed(b"0123456", ok).is_ok());
        assert_eq!(
            p.feed(b"789", ok),
            Err(FeedError::TooLarge(EventTooLarge(8)))
        );
        // A line read in place counts as much as a copied one.
        let mut p = NdjsonParser::new(8);
        assert_eq!(
            p.feed(b"0123456789\n", ok),
            Err(FeedError::TooLarge(EventTooLarge(8)))
        );
    }

    #[test]
    fn the_handlers_error_stops_the_feed() {
        let mut p = NdjsonParser::new(1024);
        let mut seen = Vec::new();
        let r = p.feed(b"1\n2\n3\n", |l: &[u8]| {
            seen.push(l.to_vec());
            if l == b"2" {
                Err("stop")
            } else {
                Ok(())
            }
        });
        assert_eq!(r, Err(FeedError::Handler("stop")));
        assert_eq!(seen, vec![b"1".to_vec(), b"2".to_vec()]);
    }
}
