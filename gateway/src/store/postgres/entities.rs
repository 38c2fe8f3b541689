//! The entity backend's SQL: load, commit, replace, changes since a
//! revision. Every function runs in one transaction.
//!
//! - **a write session** ([`begin_write`]): before a write is planned, its
//!   transaction starts and locks the `gw_config_state` row (`FOR UPDATE`,
//!   bounded by `lock_timeout`), so writers on different nodes take turns
//!   instead of racing: the one that waited finds a newer revision, catches
//!   up, and plans on it.
//! - **commit** (in that transaction): `UPDATE gw_config_state SET revision
//!   = revision + 1 WHERE revision = base`, which finds no row (`Stale`)
//!   when the write was planned on an older revision; the store then
//!   catches up and plans again, in the same transaction. So revisions are
//!   gap-free and in commit order (a sequence would be neither). Then the
//!   rows (deletes and upserts as arrays, one statement each), the
//!   change-log entry, the trim of old entries, `pg_notify('gw_config',
//!   revision)`, COMMIT.
//! - **replace**: the same, deleting every row and writing the new ones,
//!   logged as `replaced` (no rows: the other nodes reload everything).
//! - **load** and **changes since** read in one REPEATABLE READ snapshot,
//!   so the rows and the revision they report always belong together.

use std::collections::BTreeMap;

use bytes::Bytes;
use schemas::EntityKind;
use tokio_postgres::{Client, IsolationLevel, Transaction};
use uuid::Uuid;

use super::changelog;
use super::PgError;
use crate::store::backend::{Loaded, LoggedChange, LoggedCommit, Since};

/// The notification channel of configuration commits.
pub const CHANNEL: &str = "gw_config";

/// Change-log entries kept: a node further behind reloads everything.
pub const LOG_KEPT: i64 = 1000;

/// The log is trimmed every this many revisions.
const TRIM_EVERY: i64 = 100;

/// Rows per statement when writing many.
const CHUNK: usize = 5000;

/// The database's identity and revision (`gw_config_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub cluster: Uuid,
    pub revision: u64,
}

/// Who commits, on top of what.
#[derive(Debug, Clone, Copy)]
pub struct Writer {
    pub node: Uuid,
    pub cluster: Uuid,
    pub base: u64,
}

/// Every row and the head they belong to.
pub async fn load(client: &mut Client) -> Result<(Head, Loaded), PgError> {
    let transaction = snapshot(client).await?;
    let head = head(&transaction).await?;
    let loaded = rows(&transaction, head.revision).await?;
    transaction.commit().await?;
    Ok((head, loaded))
}

/// The commits after `revision` of the database `known` (the cluster the
/// node's rows come from), or a reload.
pub async fn changes_since(
    client: &mut Client,
    known: Option<Uuid>,
    revision: u64,
) -> Result<(Head, Since), PgError> {
    let transaction = snapshot(client).await?;
    let head = head(&transaction).await?;
    let since = if known != Some(head.cluster) || head.revision < revision {
        Since::Reload(rows(&transaction, head.revision).await?)
    } else if head.revision == revision {
        Since::UpToDate
    } else {
        match logged(&transaction, revision, head.revision).await? {
            Some(commits) => Since::Commits(commits),
            None => Since::Reload(rows(&transaction, head.revision).await?),
        }
    };
    transaction.commit().await?;
    Ok((head, since))
}

/// The current head only (the periodic check).
pub async fn current(client: &Client) -> Result<Head, PgError> {
    let row = client
        .query_one("SELECT cluster_id, revision FROM gw_config_state", &[])
        .await?;
    Ok(Head {
        cluster: row.get(0),
        revision: revision_of(row.get(1))?,
    })
}

/// Starts a write session on `client`: BEGIN, then the revision row
/// locked (waiting at most `lock_timeout` for another node's write).
/// Returns the revision.
pub async fn begin_write(
    client: &Client,
    lock_timeout: std::time::Duration,
) -> Result<u64, PgError> {
    let begin = format!(
        "BEGIN; SET LOCAL lock_timeout = '{}ms'",
        lock_timeout.as_millis().max(1)
    );
    // Pipelined: both go out at once, and run in this order.
    let ((), row) = tokio::try_join!(
        client.batch_execute(&begin),
        client.query_one("SELECT revision FROM gw_config_state FOR UPDATE", &[]),
    )?;
    revision_of(row.get(0))
}

/// Commits `changes` (in order) as revision `base + 1`, in the write
/// session open on `client`. `Stale` leaves the session open.
pub async fn commit(
    client: &Client,
    writer: Writer,
    changes: Vec<LoggedChange>,
) -> Result<u64, PgError> {
    let revision = claim_revision(client, writer).await?;
    let finals = final_rows(&changes);
    let puts: Vec<(EntityKind, Uuid, Bytes)> = finals
        .iter()
        .filter_map(|((kind, id), row)| row.clone().map(|row| (*kind, *id, row)))
        .collect();
    let entry = changelog::encode(&changes);
    // Pipelined (the removed and the written rows are disjoint sets).
    tokio::try_join!(
        delete_rows(client, finals.iter().filter(|(_, row)| row.is_none())),
        upsert_rows(client, &puts, revision),
        log_and_notify(client, writer.node, revision, "entities", Some(entry)),
    )?;
    finish(client).await?;
    Ok(revision as u64)
}

/// Replaces every row with `rows` as revision `base + 1`, in the write
/// session open on `client`.
pub async fn replace(
    client: &Client,
    writer: Writer,
    rows: Vec<(EntityKind, Uuid, Bytes)>,
) -> Result<u64, PgError> {
    let revision = claim_revision(client, writer).await?;
    client.execute("DELETE FROM gw_entities", &[]).await?;
    upsert_rows(client, &rows, revision).await?;
    log_and_notify(client, writer.node, revision, "replaced", None).await?;
    finish(client).await?;
    Ok(revision as u64)
}

/// COMMIT; an error there leaves the outcome unknown.
async fn finish(client: &Client) -> Result<(), PgError> {
    client
        .batch_execute("COMMIT")
        .await
        .map_err(|error| PgError::CommitUnknown(error.to_string()))
}

/// A REPEATABLE READ, read-only transaction.
async fn snapshot(client: &mut Client) -> Result<Transaction<'_>, PgError> {
    Ok(client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

async fn head(transaction: &Transaction<'_>) -> Result<Head, PgError> {
    let row = transaction
        .query_one("SELECT cluster_id, revision FROM gw_config_state", &[])
        .await?;
    Ok(Head {
        cluster: row.get(0),
        revision: revision_of(row.get(1))?,
    })
}

fn revision_of(stored: i64) -> Result<u64, PgError> {
    u64::try_from(stored).map_err(|_| PgError::Corrupt(format!("negative revision {stored}")))
}

/// Every row, as [`Loaded`] at `revision`.
async fn rows(transaction: &Transaction<'_>, revision: u64) -> Result<Loaded, PgError> {
    let mut loaded = Loaded {
        revision,
        ..Loaded::default()
    };
    let stored = transaction
        .query("SELECT kind, id, row FROM gw_entities", &[])
        .await?;
    for row in stored {
        let collection: &str = row.get(0);
        let kind = EntityKind::from_collection(collection)
            .ok_or_else(|| PgError::Corrupt(format!("unknown kind {collection:?}")))?;
        let bytes: Vec<u8> = row.get(2);
        loaded.rows[kind.index()].insert(row.get(1), Bytes::from(bytes));
    }
    Ok(loaded)
}

/// The logged commits in `(after, upto]`, or `None` when the log does not
/// hold all of them as row changes (trimmed, or a replace among them).
async fn logged(
    transaction: &Transaction<'_>,
    after: u64,
    upto: u64,
) -> Result<Option<Vec<LoggedCommit>>, PgError> {
    let entries = transaction
        .query(
            "SELECT revision, kind, changes FROM gw_config_changes \
             WHERE revision > $1 AND revision <= $2 ORDER BY revision",
            &[&(after as i64), &(upto as i64)],
        )
        .await?;
    let mut commits = Vec::with_capacity(entries.len());
    for (expected, entry) in (after + 1..).zip(&entries) {
        let revision = revision_of(entry.get(0))?;
        let kind: &str = entry.get(1);
        let changes: Option<&[u8]> = entry.get(2);
        let (true, "entities", Some(changes)) = (revision == expected, kind, changes) else {
            return Ok(None);
        };
        commits.push(LoggedCommit {
            revision,
            changes: changelog::decode(changes)?,
        });
    }
    let complete = commits.last().map(|last| last.revision) == Some(upto);
    Ok(complete.then_some(commits))
}

/// Raises the revision from `writer.base`, or answers `Stale`.
async fn claim_revision(client: &Client, writer: Writer) -> Result<i64, PgError> {
    let claimed = client
        .query_opt(
            "UPDATE gw_config_state SET revision = revision + 1 \
             WHERE revision = $1 AND cluster_id = $2 RETURNING revision",
            &[&(writer.base as i64), &writer.cluster],
        )
        .await?;
    match claimed {
        Some(row) => Ok(row.get(0)),
        None => Err(PgError::Stale { base: writer.base }),
    }
}

/// What each touched row ends up as (the last change of it wins).
fn final_rows(changes: &[LoggedChange]) -> BTreeMap<(EntityKind, Uuid), Option<Bytes>> {
    let mut finals = BTreeMap::new();
    for change in changes {
        finals.insert((change.kind, change.id), change.row.clone());
    }
    finals
}

async fn delete_rows<'a>(
    transaction: &Client,
    removed: impl Iterator<Item = (&'a (EntityKind, Uuid), &'a Option<Bytes>)>,
) -> Result<(), PgError> {
    let (kinds, ids): (Vec<&str>, Vec<Uuid>) = removed
        .map(|((kind, id), _)| (kind.collection(), *id))
        .unzip();
    for (kinds, ids) in kinds.chunks(CHUNK).zip(ids.chunks(CHUNK)) {
        transaction
            .execute(
                "DELETE FROM gw_entities WHERE (kind, id) IN \
                 (SELECT * FROM unnest($1::text[], $2::uuid[]))",
                &[&kinds, &ids],
            )
            .await?;
    }
    Ok(())
}

async fn upsert_rows(
    transaction: &Client,
    rows: &[(EntityKind, Uuid, Bytes)],
    revision: i64,
) -> Result<(), PgError> {
    for chunk in rows.chunks(CHUNK) {
        let kinds: Vec<&str> = chunk.iter().map(|(kind, _, _)| kind.collection()).collect();
        let ids: Vec<Uuid> = chunk.iter().map(|(_, id, _)| *id).collect();
        let bytes: Vec<&[u8]> = chunk.iter().map(|(_, _, row)| row.as_ref()).collect();
        transaction
            .execute(
                "INSERT INTO gw_entities (kind, id, row, revision) \
                 SELECT kind, id, row, $4 FROM unnest($1::text[], $2::uuid[], $3::bytea[]) \
                 AS given(kind, id, row) \
                 ON CONFLICT (kind, id) DO UPDATE SET row = EXCLUDED.row, revision = EXCLUDED.revision",
                &[&kinds, &ids, &bytes, &revision],
            )
            .await?;
    }
    Ok(())
}

/// The change-log entry, its trim, and the notification.
async fn log_and_notify(
    transaction: &Client,
    node: Uuid,
    revision: i64,
    kind: &str,
    changes: Option<Vec<u8>>,
) -> Result<(), PgError> {
    let payload = revision.to_string();
    let trim_upto = match revision % TRIM_EVERY {
        0 => revision - LOG_KEPT,
        _ => i64::MIN,
    };
    let logged: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
        [&revision, &node, &kind, &changes];
    let trimmed: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&trim_upto];
    let notified: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&CHANNEL, &payload];
    tokio::try_join!(
        transaction.execute(
            "INSERT INTO gw_config_changes (revision, node_id, kind, changes) VALUES ($1, $2, $3, $4)",
            &logged,
        ),
        transaction.execute(
            "DELETE FROM gw_config_changes WHERE revision <= $1",
            &trimmed,
        ),
        transaction.execute("SELECT pg_notify($1, $2)", &notified),
    )?;
    Ok(())
}
