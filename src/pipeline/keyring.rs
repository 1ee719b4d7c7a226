//! The key ring: the gateway keys as the request path uses them — the config's keys and the
//! managed keys from the usage store — each with its guardrail policy compiled. The config
//! holds only what was written (names, digests, allow-lists); what runs lives here.

use std::collections::HashSet;
use std::sync::Arc;

use crate::config::{glob_match, Config};
use crate::core::prehashed::PrehashedMap;
use crate::core::secret::digest;
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
    /// Each key's place in `keys`, by the SHA-256 digest of its secret.
    by_digest: PrehashedMap<[u8; 32], usize>,
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
        let config_names: HashSet<String> = keys.iter().map(|k| k.name.clone()).collect();
        for m in managed {
            if config_names.contains(&m.name) {
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
        // Two entries with one digest (a secret given to two keys): the later one answers.
        let by_digest = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.sha256, i))
            .collect();
        KeyRing { keys, by_digest }
    }

    /// Looks a presented key up by the digest of its secret, in constant time in the number
    /// of keys. What the lookup's timing could tell is about digests, and a digest close to
    /// a key's says nothing about that key's secret (SHA-256 is preimage-resistant): the
    /// secrets themselves are never compared.
    pub fn find(&self, presented: &str) -> Found<'_> {
        let found = self
            .by_digest
            .get(&digest(presented))
            .map(|&i| &self.keys[i]);
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

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "listen: 127.0.0.1:0\nallow_inline_secrets: true\n\
        keys: [ { name: team-a, key: sk-fake-config-key } ]\n\
        providers:\n  openai: { kind: openai, api_key: sk-fake-provider-key }\n\
        models:\n  gpt-4o: [ { provider: openai, model: gpt-4o } ]\n";

    fn managed(name: &str, secret: &str) -> ManagedKey {
        ManagedKey {
            name: name.into(),
            sha256: digest(secret),
            previous: None,
            expires_ms: None,
            models: vec![],
            guardrails: None,
            team: None,
            cache: true,
            cache_scope: None,
        }
    }

    fn ring(managed: &[ManagedKey]) -> KeyRing {
        let cfg = crate::config::parse(CONFIG).expect("valid config");
        KeyRing::new(&cfg, managed)
    }

    fn name(ring: &KeyRing, secret: &str) -> Option<String> {
        ring.find(secret).key().map(|k| k.name.clone())
    }

    #[test]
    fn every_one_of_many_keys_is_found_and_nothing_else() {
        let keys: Vec<ManagedKey> = (0..5_000)
            .map(|i| managed(&format!("k{i}"), &format!("sk-fake-managed-{i}")))
            .collect();
        let ring = ring(&keys);
        for i in (0..5_000).step_by(7) {
            assert_eq!(
                name(&ring, &format!("sk-fake-managed-{i}")),
                Some(format!("k{i}"))
            );
        }
        assert_eq!(name(&ring, "sk-fake-config-key").as_deref(), Some("team-a"));
        assert_eq!(name(&ring, "sk-fake-managed-5000"), None);
        assert_eq!(name(&ring, "sk-fake-managed-1 "), None);
        assert_eq!(name(&ring, ""), None);
        assert!(ring.has("k4999") && ring.has("team-a") && !ring.has("k5000"));
    }

    #[test]
    fn a_rotated_secret_works_until_its_grace_ends_and_names_are_not_taken_twice() {
        let mut rotated = managed("rotated", "sk-fake-new-secret");
        rotated.previous = Some((digest("sk-fake-old-secret"), now_ms() + 60_000));
        let mut lapsed = managed("lapsed", "sk-fake-lapsed-new");
        lapsed.previous = Some((digest("sk-fake-lapsed-old"), now_ms() - 1));
        let mut expired = managed("expired", "sk-fake-expired");
        expired.expires_ms = Some(now_ms() - 1);
        let shadow = managed("team-a", "sk-fake-shadowing");
        let ring = ring(&[rotated, lapsed, expired, shadow]);
        assert_eq!(
            name(&ring, "sk-fake-new-secret").as_deref(),
            Some("rotated")
        );
        assert_eq!(
            name(&ring, "sk-fake-old-secret").as_deref(),
            Some("rotated")
        );
        assert_eq!(name(&ring, "sk-fake-lapsed-new").as_deref(), Some("lapsed"));
        assert!(matches!(ring.find("sk-fake-lapsed-old"), Found::Unknown));
        assert!(matches!(ring.find("sk-fake-expired"), Found::Expired));
        // A managed key cannot take a config key's name.
        assert_eq!(name(&ring, "sk-fake-shadowing"), None);
        assert_eq!(name(&ring, "sk-fake-config-key").as_deref(), Some("team-a"));
    }
}
