//! The OTLP trace protobuf (`opentelemetry/proto/collector/trace/v1`), encoded by hand: the
//! few messages an export needs, written field by field. The field numbers are those of the
//! official `.proto` files; the test suite decodes what this writes with the official
//! definitions.

use super::{Kind, Span, Value};

/// A protobuf message being written.
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn tag(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }

    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.tag(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    fn string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }

    fn uint(&mut self, field: u32, v: u64) {
        self.tag(field, 0);
        self.varint(v);
    }

    fn fixed64(&mut self, field: u32, v: u64) {
        self.tag(field, 1);
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn fixed32(&mut self, field: u32, v: u32) {
        self.tag(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn message(&mut self, field: u32, m: Msg) {
        self.bytes(field, &m.0);
    }
}

/// `AnyValue`.
fn any(v: &Value) -> Msg {
    let mut m = Msg::default();
    match v {
        Value::Str(s) => m.string(1, s),
        Value::Bool(b) => m.uint(2, u64::from(*b)),
        Value::Int(i) => m.uint(3, *i as u64),
        Value::F64(f) => m.fixed64(4, f.to_bits()),
        Value::Strs(list) => {
            let mut array = Msg::default();
            for s in list {
                let mut item = Msg::default();
                item.string(1, s);
                array.message(1, item);
            }
            m.message(5, array);
        }
    }
    m
}

/// `KeyValue`.
fn key_value(key: &str, v: &Value) -> Msg {
    let mut m = Msg::default();
    m.string(1, key);
    m.message(2, any(v));
    m
}

/// `Span`.
fn span(s: &Span) -> Msg {
    let mut m = Msg::default();
    m.bytes(1, &s.trace_id);
    m.bytes(2, &s.span_id);
    if let Some(state) = &s.tracestate {
        m.string(3, state);
    }
    if let Some(parent) = &s.parent {
        m.bytes(4, parent);
    }
    m.string(5, &s.name);
    m.uint(
        6,
        match s.kind {
            Kind::Server => 2,
            Kind::Client => 3,
        },
    );
    m.fixed64(7, s.start);
    m.fixed64(8, s.end);
    for (k, v) in &s.attributes {
        m.message(9, key_value(k, v));
    }
    for e in &s.events {
        let mut ev = Msg::default();
        ev.fixed64(1, e.time);
        ev.string(2, e.name);
        for (k, v) in &e.attributes {
            ev.message(3, key_value(k, v));
        }
        m.message(11, ev);
    }
    let mut status = Msg::default();
    if let Some(message) = &s.error {
        status.string(2, message);
        status.uint(3, 2);
    }
    m.message(15, status);
    // W3C flags in the low byte; bits 8 and 9 say whether the parent is remote.
    let mut flags = 1u32;
    if s.parent.is_some() {
        flags |= 0x100 | if s.remote_parent { 0x200 } else { 0 };
    }
    m.fixed32(16, flags);
    m
}

/// An `ExportTraceServiceRequest` with one resource (`service.name`) and one scope.
pub(super) fn export_request(service_name: &str, spans: &[Span]) -> Vec<u8> {
    let mut resource = Msg::default();
    resource.message(
        1,
        key_value("service.name", &Value::Str(service_name.to_string())),
    );
    resource.message(
        1,
        key_value(
            "service.version",
            &Value::Str(env!("CARGO_PKG_VERSION").to_string()),
        ),
    );
    let mut scope = Msg::default();
    scope.string(1, "sluice");
    scope.string(2, env!("CARGO_PKG_VERSION"));
    let mut scope_spans = Msg::default();
    scope_spans.message(1, scope);
    for s in spans {
        scope_spans.message(2, span(s));
    }
    let mut resource_spans = Msg::default();
    resource_spans.message(1, resource);
    resource_spans.message(2, scope_spans);
    let mut request = Msg::default();
    request.message(1, resource_spans);
    request.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_negative_ints_encode_as_protobuf_does() {
        let mut m = Msg::default();
        m.varint(300);
        assert_eq!(m.0, [0xac, 0x02]);
        let neg = any(&Value::Int(-1)).0;
        // field 3, varint, ten bytes of two's complement
        assert_eq!(neg[0], 0x18);
        assert_eq!(neg.len(), 11);
        let s = any(&Value::Str("ab".into())).0;
        assert_eq!(s, [0x0a, 2, b'a', b'b']);
    }
}
