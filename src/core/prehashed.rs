//! Maps whose keys are already uniform hashes — a SHA-256 digest, Pingora's reuse hash of a
//! peer — hashed by their first eight bytes instead of through SipHash again.
//!
//! Only for keys no client chooses: what a client presents may be looked up, never inserted,
//! so no input of theirs can crowd a bucket.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map keyed by a hash or a digest (see the module).
pub type PrehashedMap<K, V> = HashMap<K, V, BuildHasherDefault<Prehashed>>;

/// The first eight bytes written, as they are.
#[derive(Default)]
pub struct Prehashed(u64);

impl Hasher for Prehashed {
    fn write(&mut self, bytes: &[u8]) {
        let mut first = [0u8; 8];
        let n = bytes.len().min(8);
        first[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(first);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }

    fn write_usize(&mut self, _: usize) {
        // The length prefix of an array key (`[u8; 32]`): the same for every key.
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    fn hash(k: impl Hash) -> u64 {
        BuildHasherDefault::<Prehashed>::default().hash_one(k)
    }

    #[test]
    fn a_hash_is_its_own_and_a_digest_its_first_eight_bytes() {
        assert_eq!(hash(0x0123_4567_89ab_cdefu64), 0x0123_4567_89ab_cdef);
        let mut digest = [0u8; 32];
        digest[..8].copy_from_slice(&7u64.to_le_bytes());
        digest[8..].fill(0xff);
        assert_eq!(hash(digest), 7);
    }

    #[test]
    fn keys_are_found() {
        let mut m = PrehashedMap::default();
        for k in 0..1000u64 {
            m.insert(k.wrapping_mul(0x9e37_79b9_7f4a_7c15), k);
        }
        for k in 0..1000u64 {
            assert_eq!(m.get(&k.wrapping_mul(0x9e37_79b9_7f4a_7c15)), Some(&k));
        }
        assert_eq!(m.get(&1), None);
    }
}
