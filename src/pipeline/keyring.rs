//! The key ring: the gateway keys as the request path uses them, built from the config at
//! startup — each key with its guardrail policy compiled. The config holds only what was
//! written (names, digests, allow-lists); what runs lives here.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{glob_match, Config};
use crate::guardrails::Policy;

/// An authenticated client's key.
#[derive(Debug)]
pub struct Key {
    pub name: String,
    sha256: [u8; 32],
    /// Allow-list of public model names (globs with `*` and `?`).
    models: Vec<String>,
    /// The guardrails that apply to this key's requests and answers.
    pub guardrails: Arc<Policy>,
}

impl Key {
    /// Whether this key may use the public model `model`.
    pub fn allows(&self, model: &str) -> bool {
        self.models.iter().any(|g| glob_match(g, model))
    }
}

/// Every configured key.
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<Key>,
}

impl KeyRing {
    pub fn new(cfg: &Config) -> Self {
        let keys = cfg
            .keys
            .iter()
            .map(|k| Key {
                name: k.name.clone(),
                sha256: k.sha256,
                models: k.models.clone(),
                guardrails: cfg
                    .guardrails
                    .policy(&k.guardrails, "keys")
                    .expect("guardrail names were validated with the config"),
            })
            .collect();
        KeyRing { keys }
    }

    /// Looks a presented key up. Every key's hash is compared in constant time, so the time
    /// taken says nothing about which key (if any) came close.
    pub fn find(&self, presented: &str) -> Option<&Key> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for k in &self.keys {
            if bool::from(k.sha256.ct_eq(&digest)) {
                found = Some(k);
            }
        }
        found
    }
}
