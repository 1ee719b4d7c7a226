//! The verdict cache of one webhook guardrail: by SHA-256 of (guardrail, direction, texts),
//! with a TTL and a bound on entries.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::Verdict;
use crate::core::sync::lock;

/// Most verdicts kept per guardrail. A verdict is small (a kind and at most
/// [`super::MAX_FINDINGS`] spans), so this bounds the memory too.
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug)]
pub(crate) struct Cache {
    ttl: Duration,
    entries: Mutex<HashMap<[u8; 32], (Instant, Verdict)>>,
}

impl Cache {
    pub(crate) fn new(ttl: Duration) -> Cache {
        Cache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cache key of a call.
    pub(crate) fn key(guardrail: &str, direction: &str, texts: &[&str]) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [guardrail, direction] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        for t in texts {
            h.update((t.len() as u64).to_le_bytes());
            h.update(t.as_bytes());
        }
        h.finalize().into()
    }

    pub(crate) fn get(&self, key: &[u8; 32]) -> Option<Verdict> {
        if self.ttl.is_zero() {
            return None;
        }
        let mut m = lock(&self.entries);
        match m.get(key) {
            Some((at, v)) if at.elapsed() < self.ttl => Some(v.clone()),
            Some(_) => {
                m.remove(key);
                None
            }
            None => None,
        }
    }

    pub(crate) fn put(&self, key: [u8; 32], v: Verdict) {
        if self.ttl.is_zero() {
            return;
        }
        let mut m = lock(&self.entries);
        if m.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            m.retain(|_, (at, _)| at.elapsed() < ttl);
            if m.len() >= MAX_ENTRIES {
                // Still full of live verdicts: start over rather than scan for the oldest.
                m.clear();
            }
        }
        m.insert(key, (Instant::now(), v));
    }
}
