//! Reading the whole redb store: the snapshot at start-up and the size
//! `max_size` is checked against.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable};

use super::codec::{self, Record};
use super::redb_store::{COUNTERS, INCOMING_QOS2, QUEUE, RETAINED, SESSIONS, SN_TOPICS, map_err};
use super::{
    MessageRecord, QueueEntry, SessionRecord, SnTopicsRecord, Snapshot, StoreError, record_size,
};

/// Sums the record sizes of everything stored, the base `max_size` is checked against.
pub(super) fn measure(db: &Database, path: &Path) -> Result<u64, StoreError> {
    let err = |e: redb::Error| map_err(path, e, true);
    let txn = db.begin_read().map_err(|e| err(e.into()))?;
    let mut total = 0u64;
    for def in [SESSIONS, RETAINED, SN_TOPICS] {
        let table = txn.open_table(def).map_err(|e| err(e.into()))?;
        for row in table.iter().map_err(|e| err(e.into()))? {
            let (k, v) = row.map_err(|e| err(e.into()))?;
            total += record_size(k.value().len(), v.value().len());
        }
    }
    let queue = txn.open_table(QUEUE).map_err(|e| err(e.into()))?;
    for row in queue.iter().map_err(|e| err(e.into()))? {
        let (k, v) = row.map_err(|e| err(e.into()))?;
        total += record_size(k.value().0.len() + 8, v.value().len());
    }
    let incoming = txn.open_table(INCOMING_QOS2).map_err(|e| err(e.into()))?;
    for row in incoming.iter().map_err(|e| err(e.into()))? {
        let (k, _) = row.map_err(|e| err(e.into()))?;
        total += record_size(k.value().0.len() + 2, 0);
    }
    let counters = txn.open_table(COUNTERS).map_err(|e| err(e.into()))?;
    for row in counters.iter().map_err(|e| err(e.into()))? {
        let (k, _) = row.map_err(|e| err(e.into()))?;
        total += record_size(k.value().len(), 8);
    }
    Ok(total)
}

fn decode_at<T: Record>(
    path: &Path,
    table: &str,
    key: &dyn std::fmt::Debug,
    bytes: &[u8],
) -> Result<T, StoreError> {
    codec::decode(bytes).map_err(|e| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("record {key:?} in table {table}: {e}"),
    })
}

fn key_mismatch(path: &Path, table: &str, key: &dyn std::fmt::Debug) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("record {key:?} in table {table} does not match its key"),
    }
}

pub(super) fn read_all(db: &Database, path: &Path) -> Result<Snapshot, StoreError> {
    let err = |e: redb::Error| map_err(path, e, false);
    let txn = db.begin_read().map_err(|e| err(e.into()))?;
    let mut snap = Snapshot::default();

    let sessions = txn.open_table(SESSIONS).map_err(|e| err(e.into()))?;
    for row in sessions.iter().map_err(|e| err(e.into()))? {
        let (k, v) = row.map_err(|e| err(e.into()))?;
        let key = k.value();
        let s: SessionRecord = decode_at(path, "sessions", &key, v.value())?;
        if s.client_id != key {
            return Err(key_mismatch(path, "sessions", &key));
        }
        snap.sessions.push(s);
    }

    let queue = txn.open_table(QUEUE).map_err(|e| err(e.into()))?;
    for row in queue.iter().map_err(|e| err(e.into()))? {
        let (k, v) = row.map_err(|e| err(e.into()))?;
        let key = k.value();
        let entry: QueueEntry = decode_at(path, "queue", &key, v.value())?;
        if entry.seq != key.1 {
            return Err(key_mismatch(path, "queue", &key));
        }
        // Keys iterate in (client, seq) order, so each queue comes out sorted.
        snap.queues.entry(key.0.to_owned()).or_default().push(entry);
    }

    let retained = txn.open_table(RETAINED).map_err(|e| err(e.into()))?;
    for row in retained.iter().map_err(|e| err(e.into()))? {
        let (k, v) = row.map_err(|e| err(e.into()))?;
        let key = k.value();
        let m: MessageRecord = decode_at(path, "retained", &key, v.value())?;
        if m.topic != key {
            return Err(key_mismatch(path, "retained", &key));
        }
        snap.retained.push(m);
    }

    let incoming = txn.open_table(INCOMING_QOS2).map_err(|e| err(e.into()))?;
    for row in incoming.iter().map_err(|e| err(e.into()))? {
        let (k, _) = row.map_err(|e| err(e.into()))?;
        let (client, id) = k.value();
        snap.incoming_qos2
            .entry(client.to_owned())
            .or_default()
            .push(id);
    }

    let sn = txn.open_table(SN_TOPICS).map_err(|e| err(e.into()))?;
    for row in sn.iter().map_err(|e| err(e.into()))? {
        let (k, v) = row.map_err(|e| err(e.into()))?;
        let key = k.value();
        let t: SnTopicsRecord = decode_at(path, "sn_topics", &key, v.value())?;
        if t.client_id != key {
            return Err(key_mismatch(path, "sn_topics", &key));
        }
        snap.sn_topics.push(t);
    }

    let counters = txn.open_table(COUNTERS).map_err(|e| err(e.into()))?;
    for row in counters.iter().map_err(|e| err(e.into()))? {
        let (k, v) = row.map_err(|e| err(e.into()))?;
        snap.counters.insert(k.value().to_owned(), v.value());
    }
    Ok(snap)
}
