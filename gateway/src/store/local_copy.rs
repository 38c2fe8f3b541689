//! The node-local copy of the configuration (`--data-dir/last-config`): what
//! a node of a shared database starts from while that database is down.
//!
//! - [`Store::keep_local_copy`] starts a thread that rewrites the file after
//!   applied revisions (at most every [`DEBOUNCE`], always ending on the
//!   latest one): written to a temporary file, synced, then renamed over the
//!   old one, so a crash leaves the old copy or the new one, never half.
//! - [`read`] loads it back as the rows of one revision and the database
//!   they came from ([`super::EntityBackend::origin`]).
//!
//! Format (version 1): three text lines, `gateway-local-copy 1`,
//! `origin <text>`, `revision <n>`, then one record per row,
//! `<collection> <id> <length>\n<row bytes>\n`, and a last line `end`.
//! Rows are the stored canonical JSON bytes, byte for byte. A file without
//! its `end` line or otherwise malformed is refused whole.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use schemas::EntityKind;
use uuid::Uuid;

use super::backend::{KindRows, Loaded};
use super::Store;

/// The file name under `--data-dir`.
pub const FILE_NAME: &str = "last-config";

/// The least time between two rewrites.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

const MAGIC: &str = "gateway-local-copy 1";

/// Why a local copy could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LocalCopyError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a complete local copy: {reason}")]
    Malformed { path: PathBuf, reason: String },
}

/// A local copy read back.
#[derive(Debug)]
pub struct LocalCopy {
    /// The database the rows came from.
    pub origin: String,
    /// The rows and their revision.
    pub loaded: Loaded,
}

/// Tells the writer thread that a revision was applied.
#[derive(Debug)]
pub(super) struct Dirty {
    sender: SyncSender<()>,
}

impl Dirty {
    pub(super) fn mark(&self) {
        match self.sender.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
        }
    }
}

impl Store {
    /// Keeps `dir/last-config` up to date with the applied configuration,
    /// starting now, until the store is dropped.
    pub fn keep_local_copy(self: &Arc<Self>, dir: &Path) {
        let (sender, receiver) = mpsc::sync_channel(1);
        let dirty = Dirty { sender };
        dirty.mark();
        *self
            .local_copy
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = Some(dirty);
        let store = Arc::downgrade(self);
        let path = dir.join(FILE_NAME);
        let spawned = std::thread::Builder::new()
            .name("local-copy".to_owned())
            .spawn(move || write_forever(&store, &receiver, &path));
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the local copy writer");
        }
    }

    /// The revision, origin and rows to write, read under one lock.
    fn local_copy_contents(&self) -> (u64, Vec<KindRows>) {
        let state = self.read_state();
        (state.revision, state.rows())
    }
}

fn write_forever(store: &Weak<Store>, dirty: &Receiver<()>, path: &Path) {
    let mut written = None;
    while dirty.recv().is_ok() {
        std::thread::sleep(DEBOUNCE);
        while dirty.try_recv().is_ok() {}
        let Some(store) = store.upgrade() else {
            return;
        };
        let (revision, rows) = store.local_copy_contents();
        let origin = store.backend.origin().unwrap_or_default();
        drop(store);
        if written == Some((revision, origin.clone())) {
            continue;
        }
        match write(path, &origin, revision, &rows) {
            Ok(()) => written = Some((revision, origin)),
            Err(error) => {
                tracing::warn!(%error, path = %path.display(), "cannot write the local copy")
            }
        }
    }
}

/// Writes a copy atomically: a temporary file, synced, renamed over `path`.
pub fn write(path: &Path, origin: &str, revision: u64, rows: &[KindRows]) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&temporary)?);
    writeln!(out, "{MAGIC}\norigin {origin}\nrevision {revision}")?;
    for kind in EntityKind::ALL {
        for (id, row) in rows.get(kind.index()).into_iter().flatten() {
            writeln!(out, "{} {id} {}", kind.collection(), row.len())?;
            out.write_all(row)?;
            out.write_all(b"\n")?;
        }
    }
    out.write_all(b"end\n")?;
    let file = out.into_inner().map_err(|error| error.into_error())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent() {
        // The rename itself reaches the disk with the directory.
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Reads `dir/last-config`; `Ok(None)` when there is none.
pub fn read(dir: &Path) -> Result<Option<LocalCopy>, LocalCopyError> {
    let path = dir.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LocalCopyError::Io { path, source }),
    };
    parse(&bytes)
        .map(Some)
        .map_err(|reason| LocalCopyError::Malformed { path, reason })
}

/// Parses a whole local copy.
fn parse(bytes: &[u8]) -> Result<LocalCopy, String> {
    let mut cursor = Cursor { bytes, at: 0 };
    if cursor.line()? != MAGIC {
        return Err("unknown format".to_owned());
    }
    let origin = cursor.field("origin")?.to_owned();
    let revision = cursor
        .field("revision")?
        .parse()
        .map_err(|_| "bad revision".to_owned())?;
    let mut loaded = Loaded {
        revision,
        ..Loaded::default()
    };
    loop {
        let line = cursor.line()?;
        if line == "end" {
            break;
        }
        let (kind, id, row) = cursor.record(line)?;
        loaded.rows[kind.index()].insert(id, row);
    }
    Ok(LocalCopy { origin, loaded })
}

/// Reads a local copy front to back.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn line(&mut self) -> Result<&'a str, String> {
        let rest = self.bytes.get(self.at..).unwrap_or_default();
        let end = rest
            .iter()
            .position(|byte| *byte == b'\n')
            .ok_or("truncated")?;
        self.at += end + 1;
        std::str::from_utf8(&rest[..end]).map_err(|_| "not text".to_owned())
    }

    fn field(&mut self, name: &str) -> Result<&'a str, String> {
        let line = self.line()?;
        line.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(' '))
            .ok_or_else(|| format!("expected {name}"))
    }

    /// The row announced by `header` (`<collection> <id> <length>`).
    fn record(&mut self, header: &str) -> Result<(EntityKind, Uuid, Bytes), String> {
        let mut parts = header.split(' ');
        let kind = parts
            .next()
            .and_then(EntityKind::from_collection)
            .ok_or("unknown collection")?;
        let id = parts
            .next()
            .and_then(|id| Uuid::parse_str(id).ok())
            .ok_or("bad id")?;
        let length: usize = parts
            .next()
            .and_then(|length| length.parse().ok())
            .ok_or("bad length")?;
        let end = self.at.checked_add(length).ok_or("bad length")?;
        let row = self.bytes.get(self.at..end).ok_or("truncated row")?;
        if self.bytes.get(end) != Some(&b'\n') {
            return Err("row not followed by a line end".to_owned());
        }
        self.at = end + 1;
        Ok((kind, id, Bytes::copy_from_slice(row)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_reads_back_byte_for_byte() {
        let dir = tempdir();
        let id = Uuid::new_v4();
        let mut rows: Vec<KindRows> = EntityKind::ALL.iter().map(|_| Default::default()).collect();
        let row = Bytes::from_static(b"{\"b\":1,\"a\":\"x\\ny\"}");
        rows[EntityKind::Consumer.index()].insert(id, row.clone());
        write(&dir.join(FILE_NAME), "cluster-1", 42, &rows).unwrap();
        let copy = read(&dir).unwrap().unwrap();
        assert_eq!(copy.origin, "cluster-1");
        assert_eq!(copy.loaded.revision, 42);
        assert_eq!(copy.loaded.rows[EntityKind::Consumer.index()][&id], row);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_truncated_copy_is_refused() {
        let dir = tempdir();
        let rows: Vec<KindRows> = EntityKind::ALL.iter().map(|_| Default::default()).collect();
        let path = dir.join(FILE_NAME);
        write(&path, "c", 1, &rows).unwrap();
        let whole = std::fs::read(&path).unwrap();
        std::fs::write(&path, &whole[..whole.len() - 4]).unwrap();
        assert!(matches!(read(&dir), Err(LocalCopyError::Malformed { .. })));
        assert!(read(&dir.join("absent")).unwrap().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gateway-local-copy-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
