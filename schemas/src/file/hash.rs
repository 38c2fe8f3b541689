//! A fast hasher for the indexes a build makes (ids, names, identities).
//!
//! The standard `HashMap` hashes with SipHash, which resists keys chosen to
//! collide but costs as much as the rest of a lookup for the short strings
//! indexed here. A build indexes every entity several times (the live
//! state, the files, the duplicate check) and the keys come from the
//! operator's own files and gateway, so this uses the multiply-rotate hash
//! of `rustc` (FxHash) instead: a few instructions per 8 bytes of key.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// A `HashSet` with [`FastHasher`].
pub type FastSet<T> = HashSet<T, BuildHasherDefault<FastHasher>>;

/// An empty [`FastMap`] with room for `capacity` entries.
pub fn map_with_capacity<K, V>(capacity: usize) -> FastMap<K, V> {
    FastMap::with_capacity_and_hasher(capacity, BuildHasherDefault::default())
}

/// FxHash: each word is mixed in with a rotate, an xor and a multiply.
#[derive(Debug, Clone, Copy, Default)]
pub struct FastHasher {
    hash: u64,
}

/// The multiplier of FxHash (from Firefox, used by `rustc`).
const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut buf = [0; 8];
            buf.copy_from_slice(word);
            self.add(u64::from_le_bytes(buf));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut buf = [0; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }

    fn write_u32(&mut self, value: u32) {
        self.add(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_find_what_they_hold() {
        let mut map = map_with_capacity(4);
        let keys: Vec<String> = (0..1000).map(|n| format!("consumer-{n}")).collect();
        for (n, key) in keys.iter().enumerate() {
            map.insert(key.as_str(), n);
        }
        for (n, key) in keys.iter().enumerate() {
            assert_eq!(map.get(key.as_str()), Some(&n));
        }
        assert_eq!(map.get("consumer-1000"), None);
        assert_eq!(map.len(), 1000);
    }

    #[test]
    fn tails_shorter_than_a_word_count() {
        let hash = |bytes: &[u8]| {
            let mut hasher = FastHasher::default();
            hasher.write(bytes);
            hasher.finish()
        };
        assert_ne!(hash(b"abcdefgh1"), hash(b"abcdefgh2"));
        assert_ne!(hash(b"a"), hash(b"b"));
    }
}
