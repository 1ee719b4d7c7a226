//! The cache key: a SHA-256 digest of everything that makes an answer what it is — the client
//! API and endpoint, the public model, the key's cache scope, the fingerprint of the
//! guardrail policy in force, and the whole request body in canonical JSON (object keys
//! sorted, no whitespace; every value as sent). Only `stream` and `stream_options` are left
//! out: they choose how the answer is delivered, not what it says, so a streamed request may
//! be served an answer stored by a whole one and the other way round.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Top-level request fields that do not enter the key (see the module's doc).
pub const DELIVERY_FIELDS: [&str; 2] = ["stream", "stream_options"];

/// A cache key: the digest of [`KeyParts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    /// The key's name in Redis.
    pub fn redis_name(&self) -> String {
        format!("sluice:cache:v1:{}", hex::encode(self.0))
    }
}

/// What a cache key is made of.
pub struct KeyParts<'a> {
    /// The client API (`openai`, `anthropic`, `responses`).
    pub api: &'a str,
    /// The endpoint (`chat`, `embeddings`, …).
    pub endpoint: &'a str,
    pub model: &'a str,
    /// The key's cache scope.
    pub scope: &'a str,
    /// The guardrail policy's fingerprint.
    pub policy: [u8; 32],
    /// The request body, in the client's API, after input guardrails.
    pub body: &'a Map<String, Value>,
}

impl KeyParts<'_> {
    pub fn key(&self) -> CacheKey {
        let mut h = Sha256::new();
        h.update(b"sluice-cache-v1\0");
        for part in [self.api, self.endpoint, self.model, self.scope] {
            h.update(part.len().to_le_bytes());
            h.update(part.as_bytes());
        }
        h.update(self.policy);
        let mut body = Vec::with_capacity(1024);
        body.push(b'{');
        let mut first = true;
        for (k, v) in sorted(self.body) {
            if DELIVERY_FIELDS.contains(&k.as_str()) {
                continue;
            }
            if !first {
                body.push(b',');
            }
            first = false;
            write_str(&mut body, k);
            body.push(b':');
            canonical(v, &mut body);
        }
        body.push(b'}');
        h.update(&body);
        CacheKey(h.finalize().into())
    }
}

/// An object's entries by key, in byte order.
fn sorted(m: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = m.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    entries
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec does not fail");
}

/// `v` as canonical JSON: object keys sorted (serde_json keeps them in the order sent here),
/// arrays in order, no whitespace, scalars as serde_json writes them.
pub fn canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            out.push(b'{');
            for (i, (k, v)) in sorted(m).into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(v, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("writing to a Vec"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(body: &str, scope: &str) -> CacheKey {
        let body: Map<String, Value> = serde_json::from_str(body).unwrap();
        KeyParts {
            api: "openai",
            endpoint: "chat",
            model: "m",
            scope,
            policy: [0; 32],
            body: &body,
        }
        .key()
    }

    #[test]
    fn key_order_and_whitespace_do_not_matter() {
        let a = key_of(
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0}"#,
            "s",
        );
        let b = key_of(
            r#"{ "temperature" : 0, "messages" : [ { "content":"hi", "role":"user" } ], "model":"m" }"#,
            "s",
        );
        assert_eq!(a, b);
    }

    #[test]
    fn every_other_difference_matters() {
        let base = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        let a = key_of(base, "s");
        for other in [
            r#"{"model":"m","messages":[{"role":"user","content":"hi "}]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"user":"u"}"#,
            r#"{"model":"m","messages":[{"role":"system","content":"hi"}]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"hi","name":null}]}"#,
        ] {
            assert_ne!(a, key_of(other, "s"), "{other}");
        }
        assert_ne!(a, key_of(base, "t"), "scope");
    }

    #[test]
    fn stream_fields_are_left_out() {
        let a = key_of(r#"{"model":"m","messages":[]}"#, "s");
        let b = key_of(
            r#"{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#,
            "s",
        );
        assert_eq!(a, b);
    }

    #[test]
    fn nested_keys_are_sorted() {
        let mut out = Vec::new();
        let v: Value =
            serde_json::from_str(r#"{"b":{"d":1,"c":[{"y":1,"x":2}]},"a":"\u00e9"}"#).unwrap();
        canonical(&v, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":"é","b":{"c":[{"x":2,"y":1}],"d":1}}"#
        );
    }
}
