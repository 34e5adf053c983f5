//! The durable store on redb: one file, `<dir>/sngate.redb`, one redb write
//! transaction per [`Store::commit`].
//!
//! redb guarantees what durability rests on here (redb 4.6 docs):
//! `Durability::Immediate` — "Commits with this durability level are
//! guaranteed to be persistent as soon as `WriteTransaction::commit` returns";
//! `Durability::None` — "Commits with this durability level will not be
//! persisted to disk unless followed by a commit with `Durability::Immediate`";
//! and after a crash "the most recent of the two commit slots with a valid
//! checksum is used", so a commit is all or nothing.

use std::fs::{self, OpenOptions};
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{
    Builder, Database, Durability, ReadableTable, Table, TableDefinition, TableHandle,
    WriteTransaction,
};

use super::backend::{CountingBackend, IoCounters};
use super::codec::{self, Record};
use super::redb_read::{measure, read_all};
use super::{CommitStats, Snapshot, Store, StoreError, StoreOp, StoreStats, record_size};

/// The store's file name inside `persistence.path`.
pub const STORE_FILE: &str = "sngate.redb";

/// The layout of tables and records this build writes. Bump it (and add a
/// migration in `check_version`) when either changes.
pub const STORE_FORMAT_VERSION: u64 = 1;

const VERSION_KEY: &str = "format_version";
// redb's default cache is 1 GiB; a gateway on a Raspberry Pi has far less to spare.
const CACHE_BYTES: usize = 8 << 20;

pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
pub(super) const QUEUE: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("queue");
pub(super) const RETAINED: TableDefinition<&str, &[u8]> = TableDefinition::new("retained");
pub(super) const INCOMING_QOS2: TableDefinition<(&str, u16), ()> =
    TableDefinition::new("incoming_qos2");
pub(super) const SN_TOPICS: TableDefinition<&str, &[u8]> = TableDefinition::new("sn_topics");
pub(super) const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

/// The durable store.
pub struct RedbStore {
    path: PathBuf,
    max_size: u64,
    // None after a failed commit: redb refuses every write after an I/O error
    // until the database is reopened, so the next commit reopens it.
    db: Option<Database>,
    io: Arc<IoCounters>,
    stats: StoreStats,
    live_bytes: u64,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .field("max_size", &self.max_size)
            .field("open", &self.db.is_some())
            .field("live_bytes", &self.live_bytes)
            .finish()
    }
}

impl RedbStore {
    /// Opens (or creates) `dir/sngate.redb`, creating `dir` if missing, and
    /// checks its integrity and format version. `max_size` 0 = unlimited.
    pub fn open(dir: &Path, max_size: u64) -> Result<RedbStore, StoreError> {
        fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(STORE_FILE);
        let io = Arc::new(IoCounters::default());
        let db = open_database(&path, &io)?;
        check_version(&db, &path)?;
        let live_bytes = guarded(&path, || measure(&db, &path))?;
        Ok(RedbStore {
            path,
            max_size,
            db: Some(db),
            io,
            stats: StoreStats::default(),
            live_bytes,
        })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of stored records (keys + values), the measure `max_size` bounds.
    pub fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    /// Test hook: makes every write, resize and fsync of the file fail with
    /// an I/O error of this kind (`StorageFull` = a full disk), or stop failing
    /// with `None`. The store recovers by itself once writes succeed again.
    #[doc(hidden)]
    pub fn inject_write_failure(&self, kind: Option<io::ErrorKind>) {
        self.io.set_failure(kind);
    }

    fn database(&mut self) -> Result<&Database, StoreError> {
        if self.db.is_none() {
            self.db = Some(open_database(&self.path, &self.io)?);
        }
        match &self.db {
            Some(db) => Ok(db),
            None => Err(StoreError::Io {
                path: self.path.clone(),
                source: io::Error::other("store is closed"),
            }),
        }
    }

    fn try_commit(&mut self, ops: &[StoreOp], durable: bool) -> Result<Applied, StoreError> {
        let (path, max_size, live_bytes) = (self.path.clone(), self.max_size, self.live_bytes);
        let db = self.database()?;
        let err = |e: redb::Error| map_err(&path, e, false);
        let mut txn = db.begin_write().map_err(|e| err(e.into()))?;
        let durability = if durable {
            Durability::Immediate
        } else {
            Durability::None
        };
        txn.set_durability(durability).map_err(|e| err(e.into()))?;
        let applied = apply_all(&txn, ops).map_err(err)?;
        let after = live_bytes
            .saturating_add(applied.added)
            .saturating_sub(applied.removed);
        // Only growth is refused: deleting must always be possible, or a full
        // store could never be emptied.
        if max_size > 0 && applied.added > applied.removed && after > max_size {
            txn.abort().map_err(|e| err(e.into()))?;
            return Err(StoreError::Full {
                path,
                size: after,
                max_size,
            });
        }
        txn.commit().map_err(|e| err(e.into()))?;
        Ok(applied)
    }
}

/// Sizes of what one transaction put and removed.
#[derive(Debug, Default)]
struct Applied {
    added: u64,
    removed: u64,
    put_bytes: u64,
}

impl Store for RedbStore {
    fn load(&mut self) -> Result<Snapshot, StoreError> {
        let path = self.path.clone();
        let db = self.database()?;
        guarded(&path, || read_all(db, &path))
    }

    fn commit(&mut self, ops: &[StoreOp], durable: bool) -> Result<CommitStats, StoreError> {
        if ops.is_empty() && !durable {
            return Ok(CommitStats::default());
        }
        let (calls0, bytes0, syncs0) = self.io.totals();
        match self.try_commit(ops, durable) {
            Ok(applied) => {
                let (calls1, bytes1, syncs1) = self.io.totals();
                self.live_bytes = self
                    .live_bytes
                    .saturating_add(applied.added)
                    .saturating_sub(applied.removed);
                let n_ops = u64::try_from(ops.len()).unwrap_or(u64::MAX);
                self.stats.commits += 1;
                self.stats.durable_commits += u64::from(durable);
                self.stats.ops += n_ops;
                self.stats.record_bytes += applied.put_bytes;
                self.stats.syncs += syncs1 - syncs0;
                self.stats.write_calls += calls1 - calls0;
                self.stats.bytes_written += bytes1 - bytes0;
                Ok(CommitStats {
                    ops: ops.len(),
                    record_bytes: applied.put_bytes,
                    durable,
                    syncs: syncs1 - syncs0,
                    bytes_written: bytes1 - bytes0,
                })
            }
            Err(e) => {
                self.stats.failed_commits += 1;
                let (calls1, bytes1, syncs1) = self.io.totals();
                self.stats.syncs += syncs1 - syncs0;
                self.stats.write_calls += calls1 - calls0;
                self.stats.bytes_written += bytes1 - bytes0;
                if !matches!(e, StoreError::Full { .. }) {
                    // Reopening repairs whatever the failed commit left.
                    self.db = None;
                }
                Err(e)
            }
        }
    }

    fn size_bytes(&self) -> u64 {
        fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    fn stats(&self) -> StoreStats {
        self.stats
    }
}

/// Moves a damaged store aside as `sngate.redb.damaged-<unix seconds>` so a
/// fresh one can be created; returns where the old file went.
pub fn move_aside(dir: &Path) -> Result<PathBuf, StoreError> {
    let path = dir.join(STORE_FILE);
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut target = dir.join(format!("{STORE_FILE}.damaged-{secs}"));
    let mut n = 1;
    while target.exists() {
        target = dir.join(format!("{STORE_FILE}.damaged-{secs}-{n}"));
        n += 1;
    }
    fs::rename(&path, &target).map_err(|source| StoreError::Io {
        path: path.clone(),
        source,
    })?;
    // Make the rename itself durable; failing to is not worth refusing over.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(target)
}

/// Runs a read of the file, turning a panic inside the storage engine (which
/// it may raise on pages it never wrote) into a `Corrupt` error.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: "the storage engine could not read it".into(),
        })
    })
}

fn open_database(path: &Path, io: &Arc<IoCounters>) -> Result<Database, StoreError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let backend =
        CountingBackend::new(file, Arc::clone(io)).map_err(|e| map_err(path, e.into(), true))?;
    guarded(path, || {
        Builder::new()
            .set_cache_size(CACHE_BYTES)
            // A plain open trusts the file and may panic on a page altered
            // behind redb's back; the check verifies every page's checksum
            // (one read of the whole file and one commit per start).
            .set_check_integrity_on_open(true)
            .create_with_backend(backend)
            .map_err(|e| map_err(path, e.into(), true))
    })
}

/// Reads or writes the format-version record; a fresh file gets the current one.
fn check_version(db: &Database, path: &Path) -> Result<(), StoreError> {
    let err = |e: redb::Error| map_err(path, e, true);
    let txn = db.begin_write().map_err(|e| err(e.into()))?;
    let found = {
        let meta = txn.open_table(META).map_err(|e| err(e.into()))?;
        meta.get(VERSION_KEY)
            .map_err(|e| err(e.into()))?
            .map(|v| v.value())
    };
    match found {
        Some(STORE_FORMAT_VERSION) => {}
        Some(found) => {
            // Version 1 is the first; an older one would be migrated here.
            txn.abort().map_err(|e| err(e.into()))?;
            return Err(StoreError::UnsupportedVersion {
                path: path.to_path_buf(),
                found,
                expected: STORE_FORMAT_VERSION,
            });
        }
        None => {
            let others = txn
                .list_tables()
                .map_err(|e| err(e.into()))?
                .filter(|t| t.name() != META.name())
                .count();
            if others > 0 {
                txn.abort().map_err(|e| err(e.into()))?;
                return Err(StoreError::Corrupt {
                    path: path.to_path_buf(),
                    reason: "it has no format version record".into(),
                });
            }
            let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
            meta.insert(VERSION_KEY, STORE_FORMAT_VERSION)
                .map_err(|e| err(e.into()))?;
        }
    }
    // Create every table, so that reads never meet a missing one.
    Tables::open(&txn).map_err(err)?;
    txn.commit().map_err(|e| err(e.into()))
}

/// Maps a redb error; at open, "not a database" and "too short" mean a damaged file.
pub(super) fn map_err(path: &Path, e: redb::Error, at_open: bool) -> StoreError {
    let path = path.to_path_buf();
    let corrupt = |reason: String| StoreError::Corrupt {
        path: path.clone(),
        reason,
    };
    match e {
        redb::Error::DatabaseAlreadyOpen | redb::Error::LockProtocolMismatch => {
            StoreError::Locked { path }
        }
        redb::Error::Io(source)
            if at_open
                && matches!(
                    source.kind(),
                    io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
                ) =>
        {
            corrupt(format!("not a readable store file: {source}"))
        }
        redb::Error::Io(source) => StoreError::Io { path, source },
        redb::Error::UpgradeRequired(v) => corrupt(format!(
            "written by an older storage engine (file format {v})"
        )),
        e @ (redb::Error::Corrupted(_)
        | redb::Error::RepairAborted
        | redb::Error::TableTypeMismatch { .. }
        | redb::Error::TableIsMultimap(_)
        | redb::Error::TableIsNotMultimap(_)
        | redb::Error::TypeDefinitionChanged { .. }) => corrupt(e.to_string()),
        e => StoreError::Io {
            path,
            source: io::Error::other(e.to_string()),
        },
    }
}

/// The tables of one write transaction.
struct Tables<'txn> {
    sessions: Table<'txn, &'static str, &'static [u8]>,
    queue: Table<'txn, (&'static str, u64), &'static [u8]>,
    retained: Table<'txn, &'static str, &'static [u8]>,
    incoming_qos2: Table<'txn, (&'static str, u16), ()>,
    sn_topics: Table<'txn, &'static str, &'static [u8]>,
    counters: Table<'txn, &'static str, u64>,
}

impl<'txn> Tables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Tables<'txn>, redb::Error> {
        Ok(Tables {
            sessions: txn.open_table(SESSIONS)?,
            queue: txn.open_table(QUEUE)?,
            retained: txn.open_table(RETAINED)?,
            incoming_qos2: txn.open_table(INCOMING_QOS2)?,
            sn_topics: txn.open_table(SN_TOPICS)?,
            counters: txn.open_table(COUNTERS)?,
        })
    }
}

fn apply_all(txn: &WriteTransaction, ops: &[StoreOp]) -> Result<Applied, redb::Error> {
    let mut t = Tables::open(txn)?;
    let mut a = Applied::default();
    for op in ops {
        apply(&mut t, op, &mut a)?;
    }
    Ok(a)
}

/// Puts a record under a string key, accounting old and new sizes.
fn put_record<R: Record>(
    table: &mut Table<'_, &'static str, &'static [u8]>,
    key: &str,
    record: &R,
    a: &mut Applied,
) -> Result<(), redb::Error> {
    let value = codec::encode(record);
    if let Some(old) = table.insert(key, value.as_slice())? {
        a.removed += record_size(key.len(), old.value().len());
    }
    a.added += record_size(key.len(), value.len());
    a.put_bytes += record_size(key.len(), value.len());
    Ok(())
}

fn remove_record(
    table: &mut Table<'_, &'static str, &'static [u8]>,
    key: &str,
    a: &mut Applied,
) -> Result<(), redb::Error> {
    if let Some(old) = table.remove(key)? {
        a.removed += record_size(key.len(), old.value().len());
    }
    Ok(())
}

fn apply(t: &mut Tables<'_>, op: &StoreOp, a: &mut Applied) -> Result<(), redb::Error> {
    match op {
        StoreOp::PutSession(s) => put_record(&mut t.sessions, &s.client_id, s, a)?,
        StoreOp::DeleteSession(id) => {
            remove_record(&mut t.sessions, id, a)?;
            let mut removed = 0;
            t.queue
                .retain_in((id.as_str(), 0u64)..=(id.as_str(), u64::MAX), |k, v| {
                    removed += record_size(k.0.len() + 8, v.len());
                    false
                })?;
            t.incoming_qos2
                .retain_in((id.as_str(), 0u16)..=(id.as_str(), u16::MAX), |k, ()| {
                    removed += record_size(k.0.len() + 2, 0);
                    false
                })?;
            a.removed += removed;
        }
        StoreOp::PutQueueEntry { client_id, entry } => {
            let value = codec::encode(entry);
            let size = record_size(client_id.len() + 8, value.len());
            if let Some(old) = t
                .queue
                .insert((client_id.as_str(), entry.seq), value.as_slice())?
            {
                a.removed += record_size(client_id.len() + 8, old.value().len());
            }
            a.added += size;
            a.put_bytes += size;
        }
        StoreOp::DeleteQueueEntry { client_id, seq } => {
            if let Some(old) = t.queue.remove((client_id.as_str(), *seq))? {
                a.removed += record_size(client_id.len() + 8, old.value().len());
            }
        }
        StoreOp::PutRetained(m) => put_record(&mut t.retained, &m.topic, m, a)?,
        StoreOp::DeleteRetained(topic) => remove_record(&mut t.retained, topic, a)?,
        StoreOp::PutIncomingQos2 {
            client_id,
            packet_id,
        } => {
            let size = record_size(client_id.len() + 2, 0);
            if t.incoming_qos2
                .insert((client_id.as_str(), *packet_id), ())?
                .is_some()
            {
                a.removed += size;
            }
            a.added += size;
            a.put_bytes += size;
        }
        StoreOp::DeleteIncomingQos2 {
            client_id,
            packet_id,
        } => {
            if t.incoming_qos2
                .remove((client_id.as_str(), *packet_id))?
                .is_some()
            {
                a.removed += record_size(client_id.len() + 2, 0);
            }
        }
        StoreOp::PutSnTopics(s) => put_record(&mut t.sn_topics, &s.client_id, s, a)?,
        StoreOp::DeleteSnTopics(id) => remove_record(&mut t.sn_topics, id, a)?,
        StoreOp::PutCounter { name, value } => {
            let size = record_size(name.len(), 8);
            if t.counters.insert(name.as_str(), *value)?.is_some() {
                a.removed += size;
            }
            a.added += size;
            a.put_bytes += size;
        }
    }
    Ok(())
}
