//! [`SledSessions`]: the session plugin's `storage: kong` rows in sled.
//!
//! The rows live in one tree of the gateway's database, dedicated to
//! sessions; it holds two kinds of keys:
//!
//! - **rows**: key = the session id (base64url of the SID, 43 characters),
//!   value = `expires` (u64, big-endian) followed by the data, i.e. the
//!   base64url ciphertext as UTF-8;
//! - **expiry index**: key = `0x00` ‖ `expires` (u64, big-endian) ‖ session
//!   id, value = empty.
//!
//! Why the index: sled keeps keys sorted, and a big-endian expiry after a
//! marker byte sorts index entries by expiry. `sweep_expired` therefore
//! reads only the index range of expired entries instead of scanning every
//! row, so a sweep over 100k live rows with a handful of expired ones costs
//! a handful of reads. Session ids are restricted to visible ASCII, so a row
//! key never starts with the `0x00` marker and the two kinds never collide.
//! A row and its index entry are always written in one sled transaction, so
//! they cannot drift apart; the sweep still double-checks the row's expiry
//! before deleting it.
//!
//! Expiry follows Kong's database TTL (see [`crate::store::sessions`]).
//! sled calls take microseconds and do not wait for the disk (sled flushes
//! every 500 ms in the background), so the [`SessionStore`] futures run
//! them inline.

use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Tree;

use crate::store::sessions::{validate_session_id, SessionError, SessionFuture, SessionStore};

/// First byte of every expiry-index key.
const INDEX_MARKER: u8 = 0x00;
/// Size of the big-endian expiry in records and index keys.
const EXPIRES_SIZE: usize = 8;

type StorageError = SessionError;

impl From<sled::Error> for SessionError {
    fn from(error: sled::Error) -> Self {
        SessionError::backend(error)
    }
}

impl From<TransactionError<SessionError>> for SessionError {
    fn from(error: TransactionError<SessionError>) -> Self {
        match error {
            TransactionError::Abort(error) => error,
            TransactionError::Storage(error) => SessionError::backend(error),
        }
    }
}

/// One decoded row.
struct SessionRecord {
    /// Epoch seconds after which the row is gone.
    expires: u64,
    /// The base64url ciphertext.
    data: String,
}

impl SessionRecord {
    /// `expires` (big-endian) followed by the data bytes.
    fn encode(expires: u64, data: &str) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(EXPIRES_SIZE + data.len());
        bytes.extend_from_slice(&expires.to_be_bytes());
        bytes.extend_from_slice(data.as_bytes());
        bytes
    }

    /// Decodes a row value; `None` when it is malformed.
    fn decode(bytes: &[u8]) -> Option<Self> {
        let (expires, data) = bytes.split_at_checked(EXPIRES_SIZE)?;
        Some(Self {
            expires: u64::from_be_bytes(expires.try_into().ok()?),
            data: String::from_utf8(data.to_vec()).ok()?,
        })
    }

    /// Only the expiry of a row value; `None` when it is malformed.
    fn decode_expires(bytes: &[u8]) -> Option<u64> {
        let expires = bytes.get(..EXPIRES_SIZE)?;
        Some(u64::from_be_bytes(expires.try_into().ok()?))
    }
}

/// The expiry-index key for a row of `session_id` expiring at `expires`.
fn index_key(expires: u64, session_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + EXPIRES_SIZE + session_id.len());
    key.push(INDEX_MARKER);
    key.extend_from_slice(&expires.to_be_bytes());
    key.extend_from_slice(session_id.as_bytes());
    key
}

/// Splits an index key into its expiry and session id.
fn parse_index_key(key: &[u8]) -> Option<(u64, &str)> {
    let rest = key.strip_prefix(&[INDEX_MARKER])?;
    let (expires, session_id) = rest.split_at_checked(EXPIRES_SIZE)?;
    let expires = u64::from_be_bytes(expires.try_into().ok()?);
    Some((expires, std::str::from_utf8(session_id).ok()?))
}

/// Session rows keyed by session id, with an expiry index for sweeping.
/// (Session ids are visible ASCII, so a row key never starts with the
/// index marker.)
#[derive(Clone, Debug)]
pub struct SledSessions {
    tree: Tree,
}

impl SledSessions {
    /// Rows in a temporary database removed on drop (tests).
    #[cfg(test)]
    pub fn temporary() -> Result<Self, StorageError> {
        let db = sled::Config::new().temporary(true).open()?;
        Ok(Self::new(db.open_tree("sessions")?))
    }

    /// Wraps a tree dedicated to session rows.
    pub fn new(tree: Tree) -> Self {
        Self { tree }
    }

    /// Stores `data` under `session_id` until `expires` (epoch seconds),
    /// replacing any previous row of that id.
    pub fn insert(&self, session_id: &str, data: &str, expires: u64) -> Result<(), StorageError> {
        validate_session_id(session_id)?;
        let record = SessionRecord::encode(expires, data);
        self.tree.transaction(|tx| {
            remove_index_of_row(tx, session_id)?;
            tx.insert(session_id.as_bytes(), record.as_slice())?;
            tx.insert(index_key(expires, session_id), &[] as &[u8])?;
            Ok(())
        })?;
        Ok(())
    }

    /// The data of `session_id`, or `None` when it is absent or expired at `now`.
    pub fn get(&self, session_id: &str, now: u64) -> Result<Option<String>, StorageError> {
        validate_session_id(session_id)?;
        let Some(bytes) = self.tree.get(session_id.as_bytes())? else {
            return Ok(None);
        };
        let record = SessionRecord::decode(&bytes)
            .ok_or_else(|| StorageError::CorruptRecord(session_id.to_string()))?;
        Ok((now <= record.expires).then_some(record.data))
    }

    /// Moves the expiry of an existing row (on renewal the old row gets
    /// `now + stale_ttl`). Returns `false` when there is no such row.
    pub fn set_expiry(&self, session_id: &str, expires: u64) -> Result<bool, StorageError> {
        validate_session_id(session_id)?;
        let updated = self.tree.transaction(|tx| {
            let Some(bytes) = tx.get(session_id.as_bytes())? else {
                return Ok(false);
            };
            let record = SessionRecord::decode(&bytes).ok_or_else(|| {
                ConflictableTransactionError::Abort(StorageError::CorruptRecord(
                    session_id.to_string(),
                ))
            })?;
            tx.remove(index_key(record.expires, session_id))?;
            tx.insert(
                session_id.as_bytes(),
                SessionRecord::encode(expires, &record.data),
            )?;
            tx.insert(index_key(expires, session_id), &[] as &[u8])?;
            Ok(true)
        })?;
        Ok(updated)
    }

    /// Deletes the row of `session_id` (logout). Returns `false` when there
    /// was no such row.
    pub fn remove(&self, session_id: &str) -> Result<bool, StorageError> {
        validate_session_id(session_id)?;
        let removed = self.tree.transaction(|tx| {
            let existed = remove_index_of_row(tx, session_id)?;
            tx.remove(session_id.as_bytes())?;
            Ok(existed)
        })?;
        Ok(removed)
    }

    /// Deletes every row that expired before `now` and returns how many.
    /// Only the expired part of the expiry index is read.
    pub fn sweep_expired(&self, now: u64) -> Result<usize, StorageError> {
        self.sweep_expired_batch(now, usize::MAX)
    }

    /// Deletes up to `batch` expired rows (visiting at most `batch` expired
    /// index entries) and returns how many rows it deleted.
    pub fn sweep_expired_batch(&self, now: u64, batch: usize) -> Result<usize, StorageError> {
        let start = [INDEX_MARKER];
        // Index keys sort by expiry; everything below `0x00 ‖ now` has
        // `expires < now` (a key with `expires == now` sorts after it).
        let end = index_key(now, "");
        let mut removed = 0;
        for entry in self
            .tree
            .range(start.as_slice()..end.as_slice())
            .take(batch)
        {
            let (key, _) = entry?;
            if self.remove_expired_entry(&key)? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Flushes pending writes to disk.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.tree.flush()?;
        Ok(())
    }

    /// Deletes one index entry and, if the row still carries that expiry,
    /// the row. Returns whether a row was deleted.
    fn remove_expired_entry(&self, key: &[u8]) -> Result<bool, StorageError> {
        let removed = self.tree.transaction(|tx| {
            tx.remove(key)?;
            let Some((expires, session_id)) = parse_index_key(key) else {
                return Ok(false);
            };
            let row = tx.get(session_id.as_bytes())?;
            let row_expires = row.as_deref().and_then(SessionRecord::decode_expires);
            if row_expires != Some(expires) {
                // The row was renewed, removed or replaced meanwhile.
                return Ok(false);
            }
            tx.remove(session_id.as_bytes())?;
            Ok(true)
        })?;
        Ok(removed)
    }
}

impl SessionStore for SledSessions {
    fn insert<'a>(
        &'a self,
        session_id: &'a str,
        data: &'a str,
        expires: u64,
    ) -> SessionFuture<'a, ()> {
        Box::pin(async move { SledSessions::insert(self, session_id, data, expires) })
    }

    fn get<'a>(&'a self, session_id: &'a str, now: u64) -> SessionFuture<'a, Option<String>> {
        Box::pin(async move { SledSessions::get(self, session_id, now) })
    }

    fn set_expiry<'a>(&'a self, session_id: &'a str, expires: u64) -> SessionFuture<'a, bool> {
        Box::pin(async move { SledSessions::set_expiry(self, session_id, expires) })
    }

    fn remove<'a>(&'a self, session_id: &'a str) -> SessionFuture<'a, bool> {
        Box::pin(async move { SledSessions::remove(self, session_id) })
    }

    fn sweep_expired(&self, now: u64, batch: usize) -> SessionFuture<'_, usize> {
        Box::pin(async move { self.sweep_expired_batch(now, batch) })
    }
}

/// Within a transaction: removes the index entry of the current row of
/// `session_id`, if any. Returns whether a row exists. A corrupt row has no
/// findable index entry; it is left for the caller to overwrite or delete.
fn remove_index_of_row(
    tx: &TransactionalTree,
    session_id: &str,
) -> Result<bool, ConflictableTransactionError<StorageError>> {
    let Some(bytes) = tx.get(session_id.as_bytes())? else {
        return Ok(false);
    };
    if let Some(expires) = SessionRecord::decode_expires(&bytes) {
        tx.remove(index_key(expires, session_id))?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn storage() -> SledSessions {
        SledSessions::temporary().expect("sled")
    }

    fn id(n: usize) -> String {
        format!("{n:0>43}")
    }

    /// Number of (row, index) keys in the tree.
    fn key_counts(storage: &SledSessions) -> (usize, usize) {
        let index = storage.tree.scan_prefix([INDEX_MARKER]).count();
        (storage.tree.len() - index, index)
    }

    #[test]
    fn insert_then_get() {
        let storage = storage();
        storage
            .insert(&id(1), "cipher-text", NOW + 3600)
            .expect("insert");
        assert_eq!(
            storage.get(&id(1), NOW).expect("get"),
            Some("cipher-text".into())
        );
        assert_eq!(storage.get(&id(2), NOW).expect("get"), None);
        assert_eq!(key_counts(&storage), (1, 1));
    }

    #[test]
    fn expired_rows_are_absent() {
        let storage = storage();
        storage.insert(&id(1), "d", NOW).expect("insert");
        assert_eq!(storage.get(&id(1), NOW).expect("get"), Some("d".into()));
        assert_eq!(storage.get(&id(1), NOW + 1).expect("get"), None);
    }

    #[test]
    fn insert_replaces_row_and_index_entry() {
        let storage = storage();
        storage.insert(&id(1), "old", NOW + 10).expect("insert");
        storage.insert(&id(1), "new", NOW + 20).expect("insert");
        assert_eq!(storage.get(&id(1), NOW).expect("get"), Some("new".into()));
        assert_eq!(key_counts(&storage), (1, 1));
        // The stale expiry must not sweep the replacement away.
        assert_eq!(storage.sweep_expired(NOW + 15).expect("sweep"), 0);
        assert_eq!(
            storage.get(&id(1), NOW + 15).expect("get"),
            Some("new".into())
        );
    }

    #[test]
    fn set_expiry_shortens_a_renewed_row() {
        let storage = storage();
        storage.insert(&id(1), "d", NOW + 3600).expect("insert");
        assert!(storage.set_expiry(&id(1), NOW + 10).expect("set_expiry"));
        assert_eq!(
            storage.get(&id(1), NOW + 10).expect("get"),
            Some("d".into())
        );
        assert_eq!(storage.get(&id(1), NOW + 11).expect("get"), None);
        assert!(!storage.set_expiry(&id(2), NOW).expect("set_expiry"));
        assert_eq!(key_counts(&storage), (1, 1));
        assert_eq!(storage.sweep_expired(NOW + 11).expect("sweep"), 1);
        assert_eq!(key_counts(&storage), (0, 0));
    }

    #[test]
    fn remove_deletes_row_and_index_entry() {
        let storage = storage();
        storage.insert(&id(1), "d", NOW + 3600).expect("insert");
        assert!(storage.remove(&id(1)).expect("remove"));
        assert!(!storage.remove(&id(1)).expect("remove"));
        assert_eq!(storage.get(&id(1), NOW).expect("get"), None);
        assert_eq!(key_counts(&storage), (0, 0));
    }

    #[test]
    fn sweep_removes_only_expired_rows() {
        let storage = storage();
        for n in 0..1000 {
            let expires = if n % 10 == 0 { NOW - 1 } else { NOW + 3600 };
            storage.insert(&id(n), "d", expires).expect("insert");
        }
        storage.insert(&id(5000), "boundary", NOW).expect("insert");
        assert_eq!(storage.sweep_expired(NOW).expect("sweep"), 100);
        assert_eq!(key_counts(&storage), (901, 901));
        assert_eq!(
            storage.get(&id(5000), NOW).expect("get"),
            Some("boundary".into())
        );
        assert_eq!(storage.get(&id(1), NOW).expect("get"), Some("d".into()));
        assert_eq!(storage.get(&id(10), NOW).expect("get"), None);
        assert_eq!(storage.sweep_expired(NOW).expect("sweep"), 0);
        assert_eq!(storage.sweep_expired(NOW + 3601).expect("sweep"), 901);
        assert_eq!(key_counts(&storage), (0, 0));
        storage.flush().expect("flush");
    }

    #[test]
    fn sweep_with_many_live_rows_reads_only_the_expired_range() {
        let storage = storage();
        for n in 0..20_000 {
            storage
                .insert(&id(n), "d", NOW + 3600 + n as u64)
                .expect("insert");
        }
        storage.insert(&id(99_999), "old", NOW - 5).expect("insert");
        // Only the index entries below `now` are visited.
        let end = index_key(NOW, "");
        let visited = storage
            .tree
            .range([INDEX_MARKER].as_slice()..end.as_slice())
            .count();
        assert_eq!(visited, 1);
        assert_eq!(storage.sweep_expired(NOW).expect("sweep"), 1);
        assert_eq!(key_counts(&storage), (20_000, 20_000));
    }

    #[test]
    fn invalid_session_ids_are_rejected() {
        let storage = storage();
        for bad in ["", "\0abc", "with space", "ü", &"x".repeat(256)] {
            assert!(matches!(
                storage.insert(bad, "d", NOW),
                Err(StorageError::InvalidSessionId)
            ));
            assert!(matches!(
                storage.get(bad, NOW),
                Err(StorageError::InvalidSessionId)
            ));
        }
    }

    #[test]
    fn corrupt_rows_are_reported_and_can_be_overwritten() {
        let storage = storage();
        storage
            .tree
            .insert(id(1).as_bytes(), &[1u8, 2][..])
            .expect("raw insert");
        assert!(matches!(
            storage.get(&id(1), NOW),
            Err(StorageError::CorruptRecord(_))
        ));
        storage.insert(&id(1), "fresh", NOW + 5).expect("insert");
        assert_eq!(storage.get(&id(1), NOW).expect("get"), Some("fresh".into()));
        assert!(storage.remove(&id(1)).expect("remove"));
        assert_eq!(key_counts(&storage), (0, 0));
    }

    #[test]
    fn index_keys_round_trip() {
        let key = index_key(NOW, "abc");
        assert_eq!(parse_index_key(&key), Some((NOW, "abc")));
        assert_eq!(parse_index_key(b"abc"), None);
        assert_eq!(parse_index_key(&[INDEX_MARKER, 1, 2]), None);
        // Big-endian expiry keeps index order equal to expiry order.
        assert!(index_key(255, "z") < index_key(256, "a"));
    }
}
