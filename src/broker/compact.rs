//! Shrinks the list of store ops kept for retry while the store refuses
//! writes, so that a long disk-full spell costs memory per stored key, not
//! per change.

use std::collections::HashSet;

use crate::store::StoreOp;

/// What an op writes; a later op on the same key makes an earlier one moot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key<'a> {
    Session(&'a str),
    Entry(&'a str, u64),
    Retained(&'a str),
    Qos2(&'a str, u16),
    SnTopics(&'a str),
    Counter(&'a str),
}

fn key(op: &StoreOp) -> Key<'_> {
    match op {
        StoreOp::PutSession(s) => Key::Session(&s.client_id),
        StoreOp::DeleteSession(c) => Key::Session(c),
        StoreOp::PutQueueEntry { client_id, entry } => Key::Entry(client_id, entry.seq),
        StoreOp::DeleteQueueEntry { client_id, seq } => Key::Entry(client_id, *seq),
        StoreOp::PutRetained(m) => Key::Retained(&m.topic),
        StoreOp::DeleteRetained(t) => Key::Retained(t),
        StoreOp::PutIncomingQos2 {
            client_id,
            packet_id,
        }
        | StoreOp::DeleteIncomingQos2 {
            client_id,
            packet_id,
        } => Key::Qos2(client_id, *packet_id),
        StoreOp::PutSnTopics(t) => Key::SnTopics(&t.client_id),
        StoreOp::DeleteSnTopics(c) => Key::SnTopics(c),
        StoreOp::PutCounter { name, .. } => Key::Counter(name),
    }
}

/// Drops every op whose effect a later op overwrites; applying the result
/// leaves the store exactly as applying `ops` would. A `DeleteSession` also
/// overwrites the session's earlier queue entries and QoS 2 ids (it deletes them).
pub fn compact(ops: Vec<StoreOp>) -> Vec<StoreOp> {
    let mut later: HashSet<Key<'_>> = HashSet::new();
    let mut deleted_sessions: HashSet<&str> = HashSet::new();
    let mut keep = vec![false; ops.len()];
    for (i, op) in ops.iter().enumerate().rev() {
        if let StoreOp::DeleteSession(c) = op {
            // Only a later delete makes a delete moot: a later put does not
            // remove the queue entries this one deletes.
            keep[i] = deleted_sessions.insert(c);
            continue;
        }
        let k = key(op);
        let wiped = match &k {
            Key::Session(c) | Key::Entry(c, _) | Key::Qos2(c, _) => deleted_sessions.contains(c),
            _ => false,
        };
        if !wiped && later.insert(k) {
            keep[i] = true;
        }
    }
    drop(later);
    drop(deleted_sessions);
    ops.into_iter()
        .zip(keep)
        .filter_map(|(op, k)| k.then_some(op))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, MessageRecord, QueueEntry, QueueState, SessionRecord, Store};
    use bytes::Bytes;

    fn msg(topic: &str, payload: &'static [u8]) -> MessageRecord {
        MessageRecord {
            topic: topic.into(),
            payload: Bytes::from_static(payload),
            qos: 1,
            retain: false,
            properties: None,
            expires_at_ms: None,
            publisher: None,
        }
    }

    fn session(c: &str, expiry: u32) -> StoreOp {
        StoreOp::PutSession(SessionRecord {
            client_id: c.into(),
            kind: 3,
            username: None,
            expiry_secs: expiry,
            expires_at_ms: None,
            subscriptions: Vec::new(),
            will: None,
            will_due_ms: None,
        })
    }

    fn entry(c: &str, seq: u64, payload: &'static [u8]) -> StoreOp {
        StoreOp::PutQueueEntry {
            client_id: c.into(),
            entry: QueueEntry {
                seq,
                message: msg("t", payload),
                subscription_ids: Vec::new(),
                state: QueueState::Queued,
            },
        }
    }

    fn applied(ops: &[StoreOp]) -> crate::store::Snapshot {
        let mut s = MemoryStore::new();
        s.commit(ops, true).unwrap();
        s.load().unwrap()
    }

    #[test]
    fn compacted_ops_leave_the_same_store_behind() {
        let ops = vec![
            session("a", 60),
            entry("a", 1, b"1"),
            StoreOp::PutRetained(msg("r", b"old")),
            entry("a", 2, b"2"),
            StoreOp::PutIncomingQos2 {
                client_id: "a".into(),
                packet_id: 5,
            },
            StoreOp::DeleteSession("a".into()),
            session("a", 120),
            entry("a", 1, b"new"),
            StoreOp::PutRetained(msg("r", b"new")),
            StoreOp::DeleteQueueEntry {
                client_id: "b".into(),
                seq: 9,
            },
            session("b", 10),
            session("b", 20),
        ];
        let compacted = compact(ops.clone());
        assert_eq!(compacted.len(), 6, "{compacted:#?}");
        assert_eq!(applied(&compacted), applied(&ops));
    }

    #[test]
    fn many_changes_of_one_retained_topic_compact_to_one_op() {
        let ops: Vec<StoreOp> = (0..1000)
            .map(|_| StoreOp::PutRetained(msg("r", b"x")))
            .collect();
        assert_eq!(compact(ops).len(), 1);
    }
}
