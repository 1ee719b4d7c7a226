//! Secrets: provider API keys, gateway keys and tokens.
//!
//! A [`Secret`] never prints its value: `Debug` and `Display` both render `***`, so a secret
//! that ends up in a log line, an error message or a panic message is still not disclosed.
//! The value is reachable only through [`Secret::expose`], which makes every use greppable.
//! A [`Secret::placeholder`] stands for a reference (`${ENV}`, `file:`) that was checked but
//! not read, as `sluice check` does by default.

use std::fmt;

/// A string that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    value: String,
    placeholder: bool,
}

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret {
            value: value.into(),
            placeholder: false,
        }
    }

    /// A secret whose reference was not read: its value is empty. Such a config is for
    /// checking only, never for serving.
    pub fn placeholder() -> Self {
        Secret {
            value: String::new(),
            placeholder: true,
        }
    }

    /// Whether this stands for a value that was not read; checks that need the value skip it.
    pub fn is_placeholder(&self) -> bool {
        self.placeholder
    }

    /// The secret value. Call it only where the value is sent on the wire or hashed.
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The SHA-256 digest of a gateway key's secret: what the config and the key store keep,
/// and what a presented key is looked up by. `ring`'s assembly (SHA extensions where the CPU
/// has them, else SIMD) takes a fraction of a portable implementation's time, and it runs
/// once per request.
pub fn digest(secret: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    d.as_ref().try_into().expect("a SHA-256 digest is 32 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("sk-test-do-not-print");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.expose(), "sk-test-do-not-print");
    }

    #[test]
    fn the_digest_is_sha256() {
        // FIPS 180-2, appendix B.1.
        assert_eq!(
            hex::encode(digest("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
