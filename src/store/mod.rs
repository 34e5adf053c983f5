//! The durable store: sessions, queued and in-flight messages, retained
//! messages, MQTT-SN topic registrations and id counters. Storage only: the
//! broker decides what to write and when; the store makes each batch of
//! writes one all-or-nothing transaction.

mod backend;
pub mod codec;
mod error;
mod memory;
mod records;
mod redb_read;
mod redb_store;

use std::collections::HashMap;

pub use error::StoreError;
pub use memory::MemoryStore;
pub use records::{
    MessageRecord, PropertiesRecord, QueueEntry, QueueState, SessionRecord, SnTopicsRecord,
    SubscriptionRecord, WillRecord,
};
pub use redb_store::{RedbStore, STORE_FILE, STORE_FORMAT_VERSION, move_aside};

/// One change to the stored state. Every op is idempotent (a put overwrites,
/// a delete of something absent does nothing), so a failed batch can be retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// Creates or replaces a session (keyed by its client id).
    PutSession(SessionRecord),
    /// Deletes a session together with its queue entries and incoming QoS 2 ids.
    DeleteSession(String),
    /// Creates or replaces one queue entry (keyed by client id and `entry.seq`).
    PutQueueEntry {
        /// Owning session.
        client_id: String,
        /// The entry.
        entry: QueueEntry,
    },
    /// Deletes one queue entry.
    DeleteQueueEntry {
        /// Owning session.
        client_id: String,
        /// The entry's seq.
        seq: u64,
    },
    /// Sets the retained message of `message.topic`.
    PutRetained(MessageRecord),
    /// Clears the retained message of a topic.
    DeleteRetained(String),
    /// Records a client's QoS 2 packet id awaiting PUBREL [MQTT-4.3.3-2].
    PutIncomingQos2 {
        /// The publishing client.
        client_id: String,
        /// Its packet id.
        packet_id: u16,
    },
    /// Forgets a QoS 2 packet id once PUBREL arrived.
    DeleteIncomingQos2 {
        /// The publishing client.
        client_id: String,
        /// Its packet id.
        packet_id: u16,
    },
    /// Creates or replaces a sensor's topic registrations.
    PutSnTopics(SnTopicsRecord),
    /// Deletes a sensor's topic registrations.
    DeleteSnTopics(String),
    /// Sets a named counter (ids that must not repeat after a restart).
    PutCounter {
        /// Counter name.
        name: String,
        /// New value.
        value: u64,
    },
}

/// Everything the store holds, as read at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Persistent sessions.
    pub sessions: Vec<SessionRecord>,
    /// Queue entries per client id, sorted by seq.
    pub queues: HashMap<String, Vec<QueueEntry>>,
    /// Retained messages.
    pub retained: Vec<MessageRecord>,
    /// Incoming QoS 2 packet ids awaiting PUBREL per client id, ascending.
    pub incoming_qos2: HashMap<String, Vec<u16>>,
    /// MQTT-SN topic registrations.
    pub sn_topics: Vec<SnTopicsRecord>,
    /// Named counters.
    pub counters: HashMap<String, u64>,
}

/// What one commit did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Ops applied.
    pub ops: usize,
    /// Encoded record bytes put (keys and values; redb's page overhead excluded).
    pub record_bytes: u64,
    /// Whether the commit was fsync'd before returning.
    pub durable: bool,
    /// fsyncs issued to the file during the commit (0 for the memory store).
    pub syncs: u64,
    /// Bytes written to the file during the commit (0 for the memory store).
    pub bytes_written: u64,
}

/// Totals since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Successful commits.
    pub commits: u64,
    /// Successful commits that were durable.
    pub durable_commits: u64,
    /// Commits that failed (I/O error or full); nothing of them was kept.
    pub failed_commits: u64,
    /// Ops in successful commits.
    pub ops: u64,
    /// Encoded record bytes put by successful commits.
    pub record_bytes: u64,
    /// fsyncs issued to the file (0 for the memory store).
    pub syncs: u64,
    /// Write calls issued to the file (0 for the memory store).
    pub write_calls: u64,
    /// Bytes written to the file (0 for the memory store).
    pub bytes_written: u64,
}

/// A durable (or in-memory) home for the broker's state. One owner calls it;
/// it is not shared between threads.
pub trait Store: Send {
    /// Reads everything stored. Called once at start-up.
    fn load(&mut self) -> Result<Snapshot, StoreError>;

    /// Applies `ops` in order as one transaction: all of them or none.
    /// With `durable`, they are on stable storage (fsync'd) when this returns;
    /// without, they survive a crash only once a later durable commit returns.
    /// An empty durable commit makes earlier non-durable ones durable.
    fn commit(&mut self, ops: &[StoreOp], durable: bool) -> Result<CommitStats, StoreError>;

    /// Bytes the store takes on disk (0 in memory).
    fn size_bytes(&self) -> u64;

    /// Totals since open.
    fn stats(&self) -> StoreStats;
}

/// The logical size of one stored record: key plus value bytes. `max_size`
/// is enforced on the sum of these.
fn record_size(key_len: usize, value_len: usize) -> u64 {
    u64::try_from(key_len.saturating_add(value_len)).unwrap_or(u64::MAX)
}
