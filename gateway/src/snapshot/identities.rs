//! Who a request can authenticate as: consumers by id and by username, and
//! key-auth credentials by key.
//!
//! The maps are [`ShardedMap`]s of `Arc`s: a change copies only the shards
//! it touches, so applying a write costs microseconds with 100k consumers.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use schemas::model::{self, Consumer};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::sharded::ShardedMap;
use crate::pdk::Credential;

/// The credential of a stored row.
fn credential_of(row: model::KeyAuthCredential) -> Credential {
    Credential {
        id: row.id,
        consumer_id: row.consumer.id,
        expires_at: row.expires_at(),
        key: row.key,
    }
}

/// Consumers and credentials with their lookup indexes.
#[derive(Clone)]
pub(super) struct IdentityMaps {
    consumers: ShardedMap<Uuid, Arc<Consumer>>,
    consumers_by_username: KeyIndex<Consumer>,
    credentials: ShardedMap<Uuid, Arc<Credential>>,
    credentials_by_key: KeyIndex<Credential>,
}

/// Entities by their [`Keyed::lookup_key`], without a second copy of the
/// keys.
type KeyIndex<T> = ShardedMap<ByKey<T>, ()>;

impl Default for IdentityMaps {
    fn default() -> Self {
        Self::build(Vec::new(), Vec::new())
    }
}

impl IdentityMaps {
    /// Indexes `consumers` and the `credentials` whose consumer exists.
    pub(super) fn build(
        consumers: Vec<Consumer>,
        credentials: Vec<model::KeyAuthCredential>,
    ) -> Self {
        let mut identities = IdentityMaps {
            consumers: ShardedMap::with_capacity(consumers.len()),
            consumers_by_username: ShardedMap::with_capacity(consumers.len()),
            credentials: ShardedMap::with_capacity(credentials.len()),
            credentials_by_key: ShardedMap::with_capacity(credentials.len()),
        };
        for consumer in consumers {
            identities.put_consumer(consumer);
        }
        for credential in credentials {
            identities.put_credential(credential);
        }
        identities
    }

    /// A copy with `consumers` then `credentials` changes applied, each in
    /// order (`None` removes the entity of that id).
    pub(super) fn with_changes(
        &self,
        consumers: Vec<(Uuid, Option<Consumer>)>,
        credentials: Vec<(Uuid, Option<model::KeyAuthCredential>)>,
    ) -> Self {
        let mut next = self.clone();
        for (id, consumer) in consumers {
            next.remove_consumer(&id);
            if let Some(consumer) = consumer {
                next.put_consumer(consumer);
            }
        }
        for (id, credential) in credentials {
            next.remove_credential(&id);
            if let Some(credential) = credential {
                next.put_credential(credential);
            }
        }
        next
    }

    fn put_consumer(&mut self, consumer: Consumer) {
        let consumer = Arc::new(consumer);
        if consumer.username.is_some() {
            replace_key(&mut self.consumers_by_username, &consumer);
        }
        self.consumers.insert(consumer.id, consumer);
    }

    fn remove_consumer(&mut self, id: &Uuid) {
        let Some(old) = self.consumers.remove(id) else {
            return;
        };
        remove_if_same(&mut self.consumers_by_username, &old);
    }

    /// Adds a credential, unless its consumer does not exist.
    fn put_credential(&mut self, row: model::KeyAuthCredential) {
        if !self.consumers.contains_key(&row.consumer.id) {
            return;
        }
        let credential = Arc::new(credential_of(row));
        replace_key(&mut self.credentials_by_key, &credential);
        self.credentials.insert(credential.id, credential);
    }

    fn remove_credential(&mut self, id: &Uuid) {
        let Some(old) = self.credentials.remove(id) else {
            return;
        };
        remove_if_same(&mut self.credentials_by_key, &old);
    }

    pub(super) fn consumer(&self, id: &Uuid) -> Option<&Arc<Consumer>> {
        self.consumers.get(id)
    }

    pub(super) fn consumer_by_username(&self, username: &str) -> Option<&Arc<Consumer>> {
        self.consumers_by_username
            .get_key_value(username)
            .map(|(entry, ())| &entry.0)
    }

    /// The credential whose key is `key`; the key found by the hash lookup
    /// is compared again in constant time.
    pub(super) fn credential_by_key(&self, key: &str) -> Option<&Arc<Credential>> {
        let (entry, ()) = self.credentials_by_key.get_key_value(key)?;
        let credential = &entry.0;
        bool::from(credential.key.as_bytes().ct_eq(key.as_bytes())).then_some(credential)
    }
}

/// Makes `entity` the one its key finds. (An insert alone would keep the
/// stored key, i.e. the entity it replaces.)
fn replace_key<T: Keyed>(index: &mut KeyIndex<T>, entity: &Arc<T>) {
    index.remove(entity.lookup_key());
    index.insert(ByKey(Arc::clone(entity)), ());
}

/// Removes `old`'s entry from a by-key index, unless the key now belongs to
/// another entity.
fn remove_if_same<T: Keyed>(index: &mut KeyIndex<T>, old: &Arc<T>) {
    let same = index
        .get_key_value(old.lookup_key())
        .is_some_and(|(entry, ())| Arc::ptr_eq(&entry.0, old));
    if same {
        index.remove(old.lookup_key());
    }
}

/// An entity with a string lookup key (a credential's key, a consumer's
/// username).
trait Keyed {
    fn lookup_key(&self) -> &str;
}

impl Keyed for Credential {
    fn lookup_key(&self) -> &str {
        &self.key
    }
}

impl Keyed for Consumer {
    fn lookup_key(&self) -> &str {
        self.username.as_deref().unwrap_or_default()
    }
}

/// A set element found by its entity's [`Keyed::lookup_key`], so an index by
/// key does not store a second copy of every key.
struct ByKey<T>(Arc<T>);

impl<T> Clone for ByKey<T> {
    fn clone(&self) -> Self {
        ByKey(Arc::clone(&self.0))
    }
}

impl<T: Keyed> Borrow<str> for ByKey<T> {
    fn borrow(&self) -> &str {
        self.0.lookup_key()
    }
}

impl<T: Keyed> PartialEq for ByKey<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0.lookup_key() == other.0.lookup_key()
    }
}

impl<T: Keyed> Eq for ByKey<T> {}

impl<T: Keyed> Hash for ByKey<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must hash like the `str` it borrows as.
        self.0.lookup_key().hash(state);
    }
}
