//! A hash map split into shards that snapshots share copy-on-write.
//!
//! A snapshot update copies the maps it changes. Copying a whole map of
//! 100k `Arc`s costs about 20 ms, mostly cache misses on the reference
//! counts; a [`ShardedMap`] copies only the table of shard pointers and the
//! shards a change touches (a 256th of the entries each), so one write costs
//! microseconds whatever the size. A lookup hashes the key twice: once to
//! pick the shard, once inside it.

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

/// How many shards a map has.
const SHARDS: usize = 256;

/// A hash map of `K` to `V` in [`SHARDS`] shards shared between copies.
pub(super) struct ShardedMap<K, V> {
    /// Picks the shard of a key (the same for every copy of the map).
    router: RandomState,
    shards: Vec<Arc<HashMap<K, V>>>,
}

impl<K, V> Clone for ShardedMap<K, V> {
    /// A copy sharing every shard until one is changed.
    fn clone(&self) -> Self {
        ShardedMap {
            router: self.router.clone(),
            shards: self.shards.clone(),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Default for ShardedMap<K, V> {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl<K: Hash + Eq + Clone, V: Clone> ShardedMap<K, V> {
    /// An empty map with room for about `capacity` entries.
    pub(super) fn with_capacity(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS);
        ShardedMap {
            router: RandomState::new(),
            shards: (0..SHARDS)
                .map(|_| Arc::new(HashMap::with_capacity(per_shard)))
                .collect(),
        }
    }

    /// The value of `key`.
    pub(super) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[self.shard_of(key)].get(key)
    }

    /// The stored key equal to `key`, with its value.
    pub(super) fn get_key_value<Q>(&self, key: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[self.shard_of(key)].get_key_value(key)
    }

    /// Sets the value of `key`, copying its shard first if another map
    /// shares it.
    pub(super) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let shard = self.shard_of(&key);
        Arc::make_mut(&mut self.shards[shard]).insert(key, value)
    }

    /// Removes `key`, copying its shard first if another map shares it.
    pub(super) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard_of(key);
        if !self.shards[shard].contains_key(key) {
            return None;
        }
        Arc::make_mut(&mut self.shards[shard]).remove(key)
    }

    /// Whether `key` has a value.
    pub(super) fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    fn shard_of<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        // The low bits of a SipHash are as good as any.
        (self.router.hash_one(key) as usize) % SHARDS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_shares_shards_until_one_changes() {
        let mut first: ShardedMap<String, u32> = ShardedMap::with_capacity(1000);
        for n in 0..1000 {
            first.insert(n.to_string(), n);
        }
        let mut second = first.clone();
        second.insert("7".to_owned(), 70);
        second.remove("8");
        second.insert("new".to_owned(), 1);
        assert_eq!(first.get("7"), Some(&7));
        assert_eq!(first.get("8"), Some(&8));
        assert_eq!(first.get("new"), None);
        assert_eq!(second.get("7"), Some(&70));
        assert_eq!(second.get("8"), None);
        assert_eq!(second.get("new"), Some(&1));
        let shared = first
            .shards
            .iter()
            .zip(&second.shards)
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        assert!(shared >= SHARDS - 3, "only the changed shards are copied");
        assert_eq!(second.remove("absent"), None);
    }
}
