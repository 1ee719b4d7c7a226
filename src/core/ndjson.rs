//! Newline-delimited JSON (`application/x-ndjson`, Ollama's stream framing): one JSON value
//! per line, `\n` or `\r\n` line endings, blank lines skipped.

use super::sse::EventTooLarge;

/// Incremental NDJSON line splitter.
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

    /// Feeds bytes; every complete, non-blank line is appended to `out` (without its ending).
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<Vec<u8>>) -> Result<(), EventTooLarge> {
        while let Some(pos) = input.iter().position(|&b| b == b'\n') {
            let (head, tail) = input.split_at(pos);
            self.line.extend_from_slice(head);
            self.check_size()?;
            self.dispatch(out);
            input = &tail[1..];
        }
        self.line.extend_from_slice(input);
        self.check_size()
    }

    /// The stream ended: a last line without its newline is dispatched anyway.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.dispatch(&mut out);
        out.pop()
    }

    fn dispatch(&mut self, out: &mut Vec<Vec<u8>>) {
        let line = std::mem::take(&mut self.line);
        let trimmed = line.trim_ascii();
        if !trimmed.is_empty() {
            out.push(if trimmed.len() == line.len() {
                line
            } else {
                trimmed.to_vec()
            });
        }
    }

    fn check_size(&self) -> Result<(), EventTooLarge> {
        if self.line.len() > self.max_line {
            Err(EventTooLarge(self.max_line))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut p = NdjsonParser::new(1024);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out).unwrap();
        }
        out.extend(p.finish());
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
        let mut p = NdjsonParser::new(8);
        let mut out = Vec::new();
        assert!(p.feed(b"0123456", &mut out).is_ok());
        assert_eq!(p.feed(b"789", &mut out), Err(EventTooLarge(8)));
    }
}
