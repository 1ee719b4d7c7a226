//! An answer's header as sluice makes it: a status and a short list of fields whose names
//! are static and lowercase, written to an HTTP/1.1 client as they are — no header map, no
//! name parsed or hashed — and turned into Pingora's header for an HTTP/2 stream.

use pingora::http::ResponseHeader;

use crate::core::framing;

/// A field's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Static(&'static str),
    Owned(String),
    Number(u64),
}

impl From<&'static str> for Value {
    fn from(v: &'static str) -> Value {
        Value::Static(v)
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Owned(v)
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Value {
        Value::Number(v as u64)
    }
}

impl Value {
    fn write(&self, w: &mut Vec<u8>) {
        match self {
            Value::Static(s) => w.extend_from_slice(s.as_bytes()),
            Value::Owned(s) => w.extend_from_slice(s.as_bytes()),
            Value::Number(n) => w.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
        }
    }

    fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Value::Static(s) => (*s).into(),
            Value::Owned(s) => s.as_str().into(),
            Value::Number(n) => n.to_string().into(),
        }
    }

    /// What `http::HeaderValue::from_str` accepts: no control character but tab.
    fn valid(&self) -> bool {
        let s = match self {
            Value::Static(s) => *s,
            Value::Owned(s) => s,
            Value::Number(_) => return true,
        };
        s.bytes().all(|b| (b >= 0x20 && b != 0x7f) || b == b'\t')
    }
}

/// An answer's status and header fields, in the order they are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    fields: Vec<(&'static str, Value)>,
}

impl Head {
    /// A header with room for `room` fields.
    pub fn new(status: u16, room: usize) -> Head {
        Head {
            status,
            fields: Vec::with_capacity(room),
        }
    }

    /// Sets `name` (lowercase) to `value` in place of all it had. A value with a control
    /// character is left out.
    pub fn insert(&mut self, name: &'static str, value: impl Into<Value>) {
        let value = value.into();
        if !value.valid() {
            return;
        }
        match self.fields.iter().position(|(n, _)| *n == name) {
            Some(i) => {
                self.fields[i].1 = value;
                let mut at = 0;
                self.fields.retain(|(n, _)| {
                    at += 1;
                    at <= i + 1 || *n != name
                });
            }
            None => self.fields.push((name, value)),
        }
    }

    /// Adds a field `name` (lowercase), after any it has. A value with a control character is
    /// left out.
    pub fn append(&mut self, name: &'static str, value: impl Into<Value>) {
        let value = value.into();
        if value.valid() {
            self.fields.push((name, value));
        }
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The body's length, when `content-length` gives it.
    pub fn content_length(&self) -> Option<u64> {
        match self.get("content-length")? {
            Value::Number(n) => Some(*n),
            v => framing::content_length(v.text().as_bytes()),
        }
    }

    /// Whether `transfer-encoding` ends in `chunked`.
    pub fn chunked(&self) -> bool {
        self.get("transfer-encoding")
            .is_some_and(|v| framing::ends_chunked(v.text().as_bytes()))
    }

    /// Writes the status line and the fields, each ending in CRLF (the blank line is the
    /// caller's, after what it adds).
    pub fn write_h1(&self, w: &mut Vec<u8>) {
        let status = http::StatusCode::from_u16(self.status).unwrap_or(http::StatusCode::OK);
        w.extend_from_slice(b"HTTP/1.1 ");
        w.extend_from_slice(status.as_str().as_bytes());
        w.push(b' ');
        if let Some(reason) = status.canonical_reason() {
            w.extend_from_slice(reason.as_bytes());
        }
        w.extend_from_slice(b"\r\n");
        for (name, value) in &self.fields {
            w.extend_from_slice(titled(name).as_bytes());
            w.extend_from_slice(b": ");
            value.write(w);
            w.extend_from_slice(b"\r\n");
        }
    }

    /// Pingora's form, for an HTTP/2 stream.
    pub fn to_pingora(&self) -> pingora::Result<ResponseHeader> {
        let mut h = ResponseHeader::build_no_case(self.status, Some(self.fields.len()))?;
        for (name, value) in &self.fields {
            h.append_header(*name, value.text().as_ref())?;
        }
        Ok(h)
    }
}

/// The name as Pingora writes it to an HTTP/1 client: the common ones titled, the others as
/// they are.
fn titled(name: &'static str) -> &'static str {
    match name {
        "accept-ranges" => "Accept-Ranges",
        "age" => "Age",
        "cache-control" => "Cache-Control",
        "connection" => "Connection",
        "content-type" => "Content-Type",
        "content-encoding" => "Content-Encoding",
        "content-length" => "Content-Length",
        "date" => "Date",
        "transfer-encoding" => "Transfer-Encoding",
        "host" => "Host",
        "server" => "Server",
        "set-cookie" => "Set-Cookie",
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_written_in_order_and_replaced_in_place() {
        let mut h = Head::new(429, 4);
        h.insert("content-type", "application/json");
        h.insert("x-request-id", "req-1".to_string());
        h.append("x-extra", "a");
        h.append("x-extra", "b");
        h.insert("content-type", "text/plain");
        h.insert("content-length", 12usize);
        // Every earlier value goes.
        h.append("retry-after", "1");
        h.append("retry-after", "2");
        h.insert("retry-after", "3");
        // Values no header may carry are left out.
        h.append("x-bad", "a\r\nx-injected: 1".to_string());
        h.insert("x-bad", "\u{7f}");
        let mut w = Vec::new();
        h.write_h1(&mut w);
        assert_eq!(
            String::from_utf8(w).unwrap(),
            "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\n\
             x-request-id: req-1\r\nx-extra: a\r\nx-extra: b\r\nContent-Length: 12\r\n\
             retry-after: 3\r\n"
        );
        assert_eq!(h.content_length(), Some(12));
        assert!(!h.chunked());
        h.insert("transfer-encoding", "gzip, chunked");
        assert!(h.chunked());
    }

    #[test]
    fn pingora_gets_the_same_fields() {
        let mut h = Head::new(200, 3);
        h.insert("content-type", "text/event-stream");
        h.append("x-extra", "a");
        h.insert("content-length", 7usize);
        let p = h.to_pingora().unwrap();
        assert_eq!(p.status.as_u16(), 200);
        assert_eq!(p.headers.get("content-length").unwrap(), "7");
        assert_eq!(p.headers.get("x-extra").unwrap(), "a");
        let mut ours = Vec::new();
        h.write_h1(&mut ours);
        let mut theirs = b"HTTP/1.1 200 OK\r\n".to_vec();
        p.header_to_h1_wire(&mut theirs);
        assert_eq!(ours, theirs);
    }
}
