//! The in-memory store: used when `[persistence] enabled = false`, and by tests.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use super::codec::{self, Record};
use super::{
    CommitStats, MessageRecord, QueueEntry, SessionRecord, SnTopicsRecord, Snapshot, Store,
    StoreError, StoreOp, StoreStats,
};

/// A store that keeps everything in memory. Clones share the same contents,
/// so a test can hand one clone to a broker, drop the broker, and start a new
/// one on another clone as if it had restarted.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    sessions: BTreeMap<String, SessionRecord>,
    queues: BTreeMap<(String, u64), QueueEntry>,
    retained: BTreeMap<String, MessageRecord>,
    incoming_qos2: BTreeSet<(String, u16)>,
    sn_topics: BTreeMap<String, SnTopicsRecord>,
    counters: BTreeMap<String, u64>,
    stats: StoreStats,
    failure: Option<io::ErrorKind>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Makes every following commit fail with an I/O error of this kind
    /// (`StorageFull` simulates a full disk), or succeed again with `None`.
    /// For tests of how the broker copes with a failing disk.
    pub fn fail_commits(&self, kind: Option<io::ErrorKind>) {
        self.state().failure = kind;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves plain data behind,
        // still consistent op by op.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn encoded_len<T: Record>(record: &T) -> u64 {
    u64::try_from(codec::encode(record).len()).unwrap_or(u64::MAX)
}

impl State {
    fn apply(&mut self, op: &StoreOp) -> u64 {
        match op {
            StoreOp::PutSession(s) => {
                self.sessions.insert(s.client_id.clone(), s.clone());
                return encoded_len(s);
            }
            StoreOp::DeleteSession(id) => {
                self.sessions.remove(id);
                self.queues.retain(|(c, _), _| c != id);
                self.incoming_qos2.retain(|(c, _)| c != id);
            }
            StoreOp::PutQueueEntry { client_id, entry } => {
                self.queues
                    .insert((client_id.clone(), entry.seq), entry.clone());
                return encoded_len(entry);
            }
            StoreOp::DeleteQueueEntry { client_id, seq } => {
                self.queues.remove(&(client_id.clone(), *seq));
            }
            StoreOp::PutRetained(m) => {
                self.retained.insert(m.topic.clone(), m.clone());
                return encoded_len(m);
            }
            StoreOp::DeleteRetained(topic) => {
                self.retained.remove(topic);
            }
            StoreOp::PutIncomingQos2 {
                client_id,
                packet_id,
            } => {
                self.incoming_qos2.insert((client_id.clone(), *packet_id));
            }
            StoreOp::DeleteIncomingQos2 {
                client_id,
                packet_id,
            } => {
                self.incoming_qos2.remove(&(client_id.clone(), *packet_id));
            }
            StoreOp::PutSnTopics(t) => {
                self.sn_topics.insert(t.client_id.clone(), t.clone());
                return encoded_len(t);
            }
            StoreOp::DeleteSnTopics(id) => {
                self.sn_topics.remove(id);
            }
            StoreOp::PutCounter { name, value } => {
                self.counters.insert(name.clone(), *value);
            }
        }
        0
    }
}

impl Store for MemoryStore {
    fn load(&mut self) -> Result<Snapshot, StoreError> {
        let state = self.state();
        let mut snapshot = Snapshot {
            sessions: state.sessions.values().cloned().collect(),
            retained: state.retained.values().cloned().collect(),
            sn_topics: state.sn_topics.values().cloned().collect(),
            counters: state
                .counters
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            ..Snapshot::default()
        };
        // BTreeMap order is (client, seq) and (client, packet id): already sorted.
        for ((client, _), entry) in &state.queues {
            snapshot
                .queues
                .entry(client.clone())
                .or_default()
                .push(entry.clone());
        }
        for (client, id) in &state.incoming_qos2 {
            snapshot
                .incoming_qos2
                .entry(client.clone())
                .or_default()
                .push(*id);
        }
        Ok(snapshot)
    }

    fn commit(&mut self, ops: &[StoreOp], durable: bool) -> Result<CommitStats, StoreError> {
        let mut state = self.state();
        if let Some(kind) = state.failure {
            state.stats.failed_commits += 1;
            return Err(StoreError::Io {
                path: PathBuf::from("<memory>"),
                source: io::Error::from(kind),
            });
        }
        let record_bytes = ops.iter().map(|op| state.apply(op)).sum();
        let stats = CommitStats {
            ops: ops.len(),
            record_bytes,
            durable,
            syncs: 0,
            bytes_written: 0,
        };
        state.stats.commits += 1;
        state.stats.durable_commits += u64::from(durable);
        state.stats.ops += u64::try_from(ops.len()).unwrap_or(u64::MAX);
        state.stats.record_bytes += record_bytes;
        Ok(stats)
    }

    fn size_bytes(&self) -> u64 {
        0
    }

    fn stats(&self) -> StoreStats {
        self.state().stats
    }
}
