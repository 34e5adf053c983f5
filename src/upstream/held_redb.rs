//! Held messages on disk: `<persistence.path>/upstream.redb`, one redb
//! write transaction per push and per removal, so a message a sensor saw
//! acknowledged is still there after a crash and goes upstream, in order,
//! under its connection's key when sngate starts again.
//!
//! The file is opened as the main store opens `sngate.redb`
//! (src/store/redb_store.rs): every page's checksum is verified on open. A
//! push commits with `Durability::Immediate` — "guaranteed to be persistent
//! as soon as `WriteTransaction::commit` returns" (redb docs) — whatever
//! `sync` says, because the sensor is acknowledged right after. A removal
//! commits with `Durability::None`: it reaches the disk with the next push,
//! and losing it in a crash only sends that message once more (QoS 1/2
//! at-least-once upstream). A copy of what is held stays in memory, so
//! reads never touch the disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Builder, Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::held::{HeldError, HeldSeq, HeldStore, MemoryHeld};
use crate::broker::Message;
use crate::broker::persist::{WallClock, message_from_record, message_record, unix_ms_now};
use crate::store::MessageRecord;
use crate::store::codec;

/// The file's name inside `persistence.path`.
pub const HELD_FILE: &str = "upstream.redb";

// Same cache bound as the main store: a gateway on a Raspberry Pi has little to spare.
const CACHE_BYTES: usize = 8 << 20;

/// (connection key, sequence) → encoded message.
const HELD: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("held");

/// The held-message file could not be opened or read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {why}")]
pub struct HeldOpenError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub why: String,
}

/// A durable [`HeldStore`] in its own redb file.
pub struct RedbHeld {
    db: Arc<Database>,
    mirror: MemoryHeld,
}

impl std::fmt::Debug for RedbHeld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbHeld")
            .field("held", &self.mirror.len())
            .finish_non_exhaustive()
    }
}

impl RedbHeld {
    /// Opens (or creates) `dir/upstream.redb` holding at most `max` messages
    /// and reads back what a previous run held.
    pub fn open(dir: &Path, max: usize) -> Result<RedbHeld, HeldOpenError> {
        let path = dir.join(HELD_FILE);
        let fail = |why: String| HeldOpenError {
            path: path.clone(),
            why,
        };
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
        let db = Builder::new()
            .set_cache_size(CACHE_BYTES)
            // A plain open trusts the file; the check verifies every page's
            // checksum, as the main store does.
            .set_check_integrity_on_open(true)
            .create(&path)
            .map_err(|e| fail(e.to_string()))?;
        let mut mirror = MemoryHeld::new(max);
        let clock = WallClock::new(std::time::Instant::now(), unix_ms_now());
        {
            let txn = db.begin_write().map_err(|e| fail(e.to_string()))?;
            // Creates the table on a fresh file.
            txn.open_table(HELD).map_err(|e| fail(e.to_string()))?;
            txn.commit().map_err(|e| fail(e.to_string()))?;
            let read = db.begin_read().map_err(|e| fail(e.to_string()))?;
            let table = read.open_table(HELD).map_err(|e| fail(e.to_string()))?;
            for row in table.iter().map_err(|e| fail(e.to_string()))? {
                let (k, v) = row.map_err(|e| fail(e.to_string()))?;
                let (key, seq) = k.value();
                match codec::decode::<MessageRecord>(v.value()) {
                    Ok(r) => {
                        mirror.restore(key, seq, message_from_record(r, &clock));
                    }
                    // One bad record must not keep every other message back.
                    Err(e) => tracing::error!(key, seq, "held message unreadable, skipped: {e}"),
                }
            }
        }
        let held = mirror.len();
        if held > 0 {
            tracing::info!(
                "{held} held message(s) for the upstream broker read back from {}",
                path.display()
            );
        }
        Ok(RedbHeld {
            db: Arc::new(db),
            mirror,
        })
    }

    /// The open file, for the other upstream tables
    /// ([`super::sessions_redb::RedbSessions`]): redb opens a file once per process.
    pub fn database(&self) -> Arc<Database> {
        self.db.clone()
    }

    fn write(
        &self,
        durability: Durability,
        op: impl FnOnce(&mut redb::Table<(&str, u64), &[u8]>) -> Result<(), redb::Error>,
    ) -> Result<(), String> {
        let mut txn = self.db.begin_write().map_err(|e| e.to_string())?;
        txn.set_durability(durability).map_err(|e| e.to_string())?;
        {
            let mut table = txn.open_table(HELD).map_err(|e| e.to_string())?;
            op(&mut table).map_err(|e| e.to_string())?;
        }
        txn.commit().map_err(|e| e.to_string())
    }
}

impl HeldStore for RedbHeld {
    fn push(&mut self, key: &str, message: Message) -> Result<HeldSeq, HeldError> {
        if self.mirror.len() >= self.mirror.max() {
            return Err(HeldError::Full {
                held: self.mirror.len(),
            });
        }
        let seq = self.mirror.next_seq();
        let clock = WallClock::new(std::time::Instant::now(), unix_ms_now());
        let bytes = codec::encode(&message_record(&message, &clock));
        // On disk first: only then may the sensor be acknowledged.
        self.write(Durability::Immediate, |t| {
            t.insert((key, seq), bytes.as_slice())?;
            Ok(())
        })
        .map_err(HeldError::Store)?;
        self.mirror.insert(key, seq, message)?;
        Ok(seq)
    }

    fn remove(&mut self, key: &str, seq: HeldSeq) {
        self.mirror.remove(key, seq);
        if let Err(e) = self.write(Durability::None, |t| {
            t.remove((key, seq))?;
            Ok(())
        }) {
            // The upstream has the message; after a restart it goes again (QoS 1 allows it).
            tracing::warn!(
                key,
                seq,
                "completed held message not removed from disk: {e}"
            );
        }
    }

    fn held(&self, key: &str) -> Vec<(HeldSeq, Message)> {
        self.mirror.held(key)
    }

    fn keys(&self) -> Vec<String> {
        self.mirror.keys()
    }

    fn len(&self) -> usize {
        self.mirror.len()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::qos::QoS;

    fn msg(n: u8) -> Message {
        Message::new("t", Bytes::from(vec![n]), QoS::AtLeastOnce, false)
    }

    fn payloads(h: &RedbHeld, key: &str) -> Vec<u8> {
        h.held(key).into_iter().map(|(_, m)| m.payload[0]).collect()
    }

    #[test]
    fn held_messages_come_back_in_order_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut h = RedbHeld::open(dir.path(), 10).unwrap();
            h.push("a", msg(1)).unwrap();
            h.push("b", msg(9)).unwrap();
            h.push("a", msg(2)).unwrap();
        }
        let h = RedbHeld::open(dir.path(), 10).unwrap();
        assert_eq!(payloads(&h, "a"), [1, 2]);
        assert_eq!(payloads(&h, "b"), [9]);
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn removed_messages_stay_removed_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut h = RedbHeld::open(dir.path(), 10).unwrap();
            let first = h.push("a", msg(1)).unwrap();
            h.push("a", msg(2)).unwrap();
            h.remove("a", first);
        }
        let h = RedbHeld::open(dir.path(), 10).unwrap();
        assert_eq!(payloads(&h, "a"), [2]);
    }

    #[test]
    fn pushes_after_a_reopen_come_after_what_was_held() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut h = RedbHeld::open(dir.path(), 10).unwrap();
            h.push("a", msg(1)).unwrap();
        }
        let mut h = RedbHeld::open(dir.path(), 10).unwrap();
        h.push("a", msg(2)).unwrap();
        assert_eq!(payloads(&h, "a"), [1, 2]);
    }

    #[test]
    fn the_bound_refuses_with_full() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = RedbHeld::open(dir.path(), 1).unwrap();
        h.push("a", msg(1)).unwrap();
        assert_eq!(h.push("a", msg(2)), Err(HeldError::Full { held: 1 }));
    }
}
