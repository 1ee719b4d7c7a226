//! The key ring: the gateway keys as the request path uses them — the config's keys and the
//! managed keys from the usage store — each with its guardrail policy compiled. The config
//! holds only what was written (names, digests, allow-lists); what runs lives here.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{glob_match, Config};
use crate::guardrails::Policy;

/// An authenticated client's key.
#[derive(Debug, Clone)]
pub struct Key {
    pub name: String,
    sha256: [u8; 32],
    /// Allow-list of public model names (globs with `*` and `?`).
    models: Vec<String>,
    /// The guardrails that apply to this key's requests and answers.
    pub guardrails: Arc<Policy>,
    /// The team the key belongs to, recorded in the usage ledger.
    pub team: Option<String>,
    /// Unix milliseconds after which the key is refused (expiry, or the end of a rotated-out
    /// secret's grace period).
    valid_until_ms: Option<u64>,
    /// Refused as expired (rather than unknown) once `valid_until_ms` has passed.
    expires: bool,
    /// The response cache scope of the key's answers (`keys[].cache_scope`, else the key's
    /// own); `None` when the cache is off for the key (`keys[].cache: false`).
    pub cache_scope: Option<Arc<str>>,
}

impl Key {
    /// Whether this key may use the public model `model`.
    pub fn allows(&self, model: &str) -> bool {
        self.models.iter().any(|g| glob_match(g, model))
    }
}

/// A managed key, as the control plane validated it from the usage store.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedKey {
    pub name: String,
    pub sha256: [u8; 32],
    /// The secret it replaced and when that stops working (a rotation's grace period).
    pub previous: Option<([u8; 32], u64)>,
    pub expires_ms: Option<u64>,
    /// Allowed model globs; empty = every model.
    pub models: Vec<String>,
    /// Guardrail names; `None` = `default_guardrails`.
    pub guardrails: Option<Vec<String>>,
    pub team: Option<String>,
    /// Whether the response cache serves the key (`cache` in its metadata).
    pub cache: bool,
    /// The cache scope it shares (`cache_scope` in its metadata); `None` = its own.
    pub cache_scope: Option<String>,
}

/// The cache scope of a key: the shared one it names, else its own.
fn scope(name: &str, sha256: &[u8; 32], shared: Option<&String>) -> Arc<str> {
    match shared {
        Some(shared) => format!("scope:{shared}").into(),
        None => own_scope(name, sha256),
    }
}

/// A key's own cache scope: its name and its secret's digest, so that a key deleted and made
/// again under the same name never sees the answers of the one before.
fn own_scope(name: &str, sha256: &[u8; 32]) -> Arc<str> {
    format!("key:{}:{}", hex::encode(&sha256[..16]), name).into()
}

/// What a presented key turned out to be.
pub enum Found<'a> {
    Valid(&'a Key),
    Expired,
    Unknown,
}

impl<'a> Found<'a> {
    /// The key, when it may be used.
    pub fn key(self) -> Option<&'a Key> {
        match self {
            Found::Valid(k) => Some(k),
            _ => None,
        }
    }
}

/// Every key a client may present.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: Vec<Key>,
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl KeyRing {
    /// The config's keys and the `managed` ones. A managed key whose guardrails the config no
    /// longer has is left out (refused rather than served unguarded), with a log line.
    pub fn new(cfg: &Config, managed: &[ManagedKey]) -> Self {
        let mut keys: Vec<Key> = cfg
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
                team: k.team.clone(),
                valid_until_ms: None,
                expires: false,
                cache_scope: k
                    .cache
                    .then(|| scope(&k.name, &k.sha256, k.cache_scope.as_ref())),
            })
            .collect();
        for m in managed {
            if keys.iter().any(|k| k.name == m.name) {
                log::warn!(
                    "managed key '{}' has the name of a key in the config file: not used",
                    m.name
                );
                continue;
            }
            let names = m.guardrails.as_ref().unwrap_or(&cfg.default_guardrails);
            let guardrails = match cfg.guardrails.policy(names, "guardrails") {
                Ok(p) => p,
                Err(e) => {
                    log::error!("managed key '{}' is refused until fixed: {e}", m.name);
                    continue;
                }
            };
            let key = Key {
                name: m.name.clone(),
                sha256: m.sha256,
                models: if m.models.is_empty() {
                    vec!["*".into()]
                } else {
                    m.models.clone()
                },
                guardrails,
                team: m.team.clone(),
                valid_until_ms: m.expires_ms,
                expires: true,
                cache_scope: m
                    .cache
                    .then(|| scope(&m.name, &m.sha256, m.cache_scope.as_ref())),
            };
            if let Some((previous, until)) = m.previous {
                keys.push(Key {
                    sha256: previous,
                    valid_until_ms: Some(m.expires_ms.map_or(until, |e| e.min(until))),
                    expires: false,
                    ..key.clone()
                });
            }
            keys.push(key);
        }
        KeyRing { keys }
    }

    /// Looks a presented key up. Every key's hash is compared in constant time, so the time
    /// taken says nothing about which key (if any) came close.
    pub fn find(&self, presented: &str) -> Found<'_> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for k in &self.keys {
            if bool::from(k.sha256.ct_eq(&digest)) {
                found = Some(k);
            }
        }
        match found {
            None => Found::Unknown,
            Some(k) if k.valid_until_ms.is_some_and(|t| now_ms() >= t) => {
                if k.expires {
                    Found::Expired
                } else {
                    Found::Unknown
                }
            }
            Some(k) => Found::Valid(k),
        }
    }

    /// Whether a key of this name exists (config or managed).
    pub fn has(&self, name: &str) -> bool {
        self.keys.iter().any(|k| k.name == name)
    }
}
