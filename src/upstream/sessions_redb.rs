//! Persistent sensor sessions of aggregating mode on disk, in the same
//! `upstream.redb` as the held messages (and so with its integrity check on
//! open). Four tables:
//!
//! - `sessions`: client id → (session expiry secs, away-until unix ms, 0
//!   while connected);
//! - `session_subs`: (client id, filter) → granted QoS;
//! - `session_messages`: (client id, seq) → message, queued or delivered and
//!   not yet acknowledged by the sensor;
//! - `pool_filters`: filter → the pool connection holding the upstream
//!   subscription.
//!
//! Writes the gateway acknowledges something after (a message from the
//! upstream, a SUBACK, a session going away) commit with
//! `Durability::Immediate`, as held-message pushes do. Removals of
//! delivered messages and pool-filter changes commit with
//! `Durability::None` and reach the disk with the next immediate commit:
//! losing one in a crash only delivers a message once more (at least once)
//! or leaves a filter to be unsubscribed later.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::sessions::{Restored, RestoredSession, SessionSeq, SessionStore, StoredSession};
use crate::broker::Message;
use crate::broker::persist::{WallClock, message_from_record, message_record, unix_ms_now};
use crate::qos::QoS;
use crate::store::MessageRecord;
use crate::store::codec;

const SESSIONS: TableDefinition<&str, (u32, u64)> = TableDefinition::new("sessions");
const SESSION_SUBS: TableDefinition<(&str, &str), u8> = TableDefinition::new("session_subs");
const SESSION_MESSAGES: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("session_messages");
const POOL_FILTERS: TableDefinition<&str, &str> = TableDefinition::new("pool_filters");

/// What is on disk, by client id, so removals name exact keys.
#[derive(Debug, Default)]
struct Known {
    subs: BTreeSet<String>,
    messages: BTreeSet<SessionSeq>,
}

/// A durable [`SessionStore`] sharing the held-message file.
pub struct RedbSessions {
    db: Arc<Database>,
    known: HashMap<String, Known>,
    next: SessionSeq,
}

impl std::fmt::Debug for RedbSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbSessions")
            .field("sessions", &self.known.len())
            .finish_non_exhaustive()
    }
}

impl RedbSessions {
    /// Sessions in `db` (the open `upstream.redb`); creates the tables.
    pub fn open(db: Arc<Database>) -> Result<RedbSessions, String> {
        let txn = db.begin_write().map_err(|e| e.to_string())?;
        txn.open_table(SESSIONS).map_err(|e| e.to_string())?;
        txn.open_table(SESSION_SUBS).map_err(|e| e.to_string())?;
        txn.open_table(SESSION_MESSAGES)
            .map_err(|e| e.to_string())?;
        txn.open_table(POOL_FILTERS).map_err(|e| e.to_string())?;
        txn.commit().map_err(|e| e.to_string())?;
        Ok(RedbSessions {
            db,
            known: HashMap::new(),
            next: 1,
        })
    }

    fn write(
        &self,
        durability: Durability,
        op: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), String> {
        let mut txn = self.db.begin_write().map_err(|e| e.to_string())?;
        txn.set_durability(durability).map_err(|e| e.to_string())?;
        op(&txn).map_err(|e| e.to_string())?;
        txn.commit().map_err(|e| e.to_string())
    }

    fn read_all(&mut self) -> Result<Restored, String> {
        let read = self.db.begin_read().map_err(|e| e.to_string())?;
        let clock = WallClock::new(std::time::Instant::now(), unix_ms_now());
        let mut sessions: BTreeMap<String, RestoredSession> = BTreeMap::new();
        let table = read.open_table(SESSIONS).map_err(|e| e.to_string())?;
        for row in table.iter().map_err(|e| e.to_string())? {
            let (k, v) = row.map_err(|e| e.to_string())?;
            let (expiry_secs, away) = v.value();
            let id = k.value().to_owned();
            self.known.entry(id.clone()).or_default();
            sessions.insert(
                id.clone(),
                RestoredSession {
                    client_id: id,
                    session: StoredSession {
                        expiry_secs,
                        away_until_ms: (away != 0).then_some(away),
                        subs: BTreeMap::new(),
                    },
                    messages: Vec::new(),
                },
            );
        }
        let table = read.open_table(SESSION_SUBS).map_err(|e| e.to_string())?;
        for row in table.iter().map_err(|e| e.to_string())? {
            let (k, v) = row.map_err(|e| e.to_string())?;
            let (id, filter) = k.value();
            self.known
                .entry(id.to_owned())
                .or_default()
                .subs
                .insert(filter.to_owned());
            let (Some(s), Some(qos)) = (sessions.get_mut(id), QoS::from_u8(v.value())) else {
                continue;
            };
            s.session.subs.insert(filter.to_owned(), qos);
        }
        let table = read
            .open_table(SESSION_MESSAGES)
            .map_err(|e| e.to_string())?;
        for row in table.iter().map_err(|e| e.to_string())? {
            let (k, v) = row.map_err(|e| e.to_string())?;
            let (id, seq) = k.value();
            self.next = self.next.max(seq.saturating_add(1));
            self.known
                .entry(id.to_owned())
                .or_default()
                .messages
                .insert(seq);
            let Some(s) = sessions.get_mut(id) else {
                continue;
            };
            match codec::decode::<MessageRecord>(v.value()) {
                Ok(r) => s.messages.push((seq, message_from_record(r, &clock))),
                // One bad record must not keep the others back.
                Err(e) => tracing::error!(
                    client_id = id,
                    seq,
                    "stored message unreadable, skipped: {e}"
                ),
            }
        }
        let mut pool_filters = BTreeMap::new();
        let table = read.open_table(POOL_FILTERS).map_err(|e| e.to_string())?;
        for row in table.iter().map_err(|e| e.to_string())? {
            let (k, v) = row.map_err(|e| e.to_string())?;
            pool_filters.insert(k.value().to_owned(), v.value().to_owned());
        }
        Ok(Restored {
            sessions: sessions.into_values().collect(),
            pool_filters,
        })
    }
}

impl SessionStore for RedbSessions {
    fn restore(&mut self) -> Restored {
        match self.read_all() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("persistent sessions of the upstream mode unreadable: {e}");
                Restored::default()
            }
        }
    }

    fn save_session(&mut self, client_id: &str, session: &StoredSession) -> Result<(), String> {
        let old = self
            .known
            .get(client_id)
            .map(|k| k.subs.clone())
            .unwrap_or_default();
        self.write(Durability::Immediate, |txn| {
            let mut t = txn.open_table(SESSIONS)?;
            t.insert(
                client_id,
                (session.expiry_secs, session.away_until_ms.unwrap_or(0)),
            )?;
            let mut subs = txn.open_table(SESSION_SUBS)?;
            for f in old.iter().filter(|f| !session.subs.contains_key(*f)) {
                subs.remove((client_id, f.as_str()))?;
            }
            for (f, q) in &session.subs {
                subs.insert((client_id, f.as_str()), q.as_u8())?;
            }
            Ok(())
        })?;
        self.known.entry(client_id.to_owned()).or_default().subs =
            session.subs.keys().cloned().collect();
        Ok(())
    }

    fn remove_session(&mut self, client_id: &str) {
        let Some(k) = self.known.remove(client_id) else {
            return;
        };
        let r = self.write(Durability::Immediate, |txn| {
            txn.open_table(SESSIONS)?.remove(client_id)?;
            let mut subs = txn.open_table(SESSION_SUBS)?;
            for f in &k.subs {
                subs.remove((client_id, f.as_str()))?;
            }
            let mut msgs = txn.open_table(SESSION_MESSAGES)?;
            for seq in &k.messages {
                msgs.remove((client_id, *seq))?;
            }
            Ok(())
        });
        if let Err(e) = r {
            tracing::warn!(client_id, "ended session not removed from disk: {e}");
        }
    }

    fn push(&mut self, client_ids: &[&str], message: &Message) -> Result<Vec<SessionSeq>, String> {
        if client_ids.is_empty() {
            return Ok(Vec::new());
        }
        let clock = WallClock::new(std::time::Instant::now(), unix_ms_now());
        let bytes = codec::encode(&message_record(message, &clock));
        let first = self.next;
        let seqs: Vec<SessionSeq> = (first..).take(client_ids.len()).collect();
        self.write(Durability::Immediate, |txn| {
            let mut t = txn.open_table(SESSION_MESSAGES)?;
            for (id, seq) in client_ids.iter().zip(&seqs) {
                t.insert((*id, *seq), bytes.as_slice())?;
            }
            Ok(())
        })?;
        self.next = first.saturating_add(seqs.len() as u64);
        for (id, seq) in client_ids.iter().zip(&seqs) {
            self.known
                .entry((*id).to_owned())
                .or_default()
                .messages
                .insert(*seq);
        }
        Ok(seqs)
    }

    fn remove_message(&mut self, client_id: &str, seq: SessionSeq) {
        let Some(k) = self.known.get_mut(client_id) else {
            return;
        };
        if !k.messages.remove(&seq) {
            return;
        }
        let r = self.write(Durability::None, |txn| {
            txn.open_table(SESSION_MESSAGES)?.remove((client_id, seq))?;
            Ok(())
        });
        if let Err(e) = r {
            // After a restart the sensor gets it once more (at least once).
            tracing::warn!(
                client_id,
                seq,
                "acknowledged message not removed from disk: {e}"
            );
        }
    }

    fn save_filter(&mut self, filter: &str, link_key: &str) {
        let r = self.write(Durability::None, |txn| {
            txn.open_table(POOL_FILTERS)?.insert(filter, link_key)?;
            Ok(())
        });
        if let Err(e) = r {
            tracing::warn!(filter, "pool subscription not written down: {e}");
        }
    }

    fn remove_filter(&mut self, filter: &str) {
        let r = self.write(Durability::None, |txn| {
            txn.open_table(POOL_FILTERS)?.remove(filter)?;
            Ok(())
        });
        if let Err(e) = r {
            tracing::warn!(filter, "pool unsubscription not written down: {e}");
        }
    }

    fn durable(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use redb::ReadableTableMetadata;

    use crate::upstream::held_redb::RedbHeld;

    fn msg(n: u8) -> Message {
        Message::new("t", Bytes::from(vec![n]), QoS::AtLeastOnce, false)
    }

    fn open(dir: &std::path::Path) -> RedbSessions {
        let held = RedbHeld::open(dir, 10).unwrap();
        RedbSessions::open(held.database()).unwrap()
    }

    fn session(away: Option<u64>, subs: &[(&str, QoS)]) -> StoredSession {
        StoredSession {
            expiry_secs: 60,
            away_until_ms: away,
            subs: subs.iter().map(|(f, q)| ((*f).to_owned(), *q)).collect(),
        }
    }

    #[test]
    fn a_session_and_its_messages_come_back_in_order_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = open(dir.path());
            s.save_session("c", &session(Some(5), &[("a/#", QoS::AtLeastOnce)]))
                .unwrap();
            s.push(&["c"], &msg(1)).unwrap();
            s.push(&["c"], &msg(2)).unwrap();
        }
        let mut s = open(dir.path());
        let r = s.restore();
        assert_eq!(r.sessions.len(), 1);
        let c = &r.sessions[0];
        assert_eq!(c.client_id, "c");
        assert_eq!(c.session, session(Some(5), &[("a/#", QoS::AtLeastOnce)]));
        let payloads: Vec<u8> = c.messages.iter().map(|(_, m)| m.payload[0]).collect();
        assert_eq!(payloads, [1, 2]);
    }

    #[test]
    fn acknowledged_messages_and_dropped_subscriptions_stay_gone_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = open(dir.path());
            let subs = [("a", QoS::AtLeastOnce), ("b", QoS::ExactlyOnce)];
            s.save_session("c", &session(None, &subs)).unwrap();
            let seqs = s.push(&["c"], &msg(1)).unwrap();
            s.push(&["c"], &msg(2)).unwrap();
            s.remove_message("c", seqs[0]);
            s.save_session("c", &session(None, &subs[1..])).unwrap();
        }
        let r = open(dir.path()).restore();
        let c = &r.sessions[0];
        assert_eq!(c.session.subs.keys().collect::<Vec<_>>(), ["b"]);
        let payloads: Vec<u8> = c.messages.iter().map(|(_, m)| m.payload[0]).collect();
        assert_eq!(payloads, [2]);
    }

    #[test]
    fn a_removed_session_takes_its_messages_with_it() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = open(dir.path());
            s.save_session("c", &session(Some(5), &[("a", QoS::AtLeastOnce)]))
                .unwrap();
            s.push(&["c"], &msg(1)).unwrap();
            s.remove_session("c");
        }
        let mut s = open(dir.path());
        assert!(s.restore().sessions.is_empty());
        let read = s.db.begin_read().unwrap();
        assert!(
            read.open_table(SESSION_MESSAGES)
                .unwrap()
                .is_empty()
                .unwrap()
        );
    }

    #[test]
    fn one_push_numbers_each_recipient_and_later_pushes_number_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let first = {
            let mut s = open(dir.path());
            s.push(&["a", "b"], &msg(1)).unwrap()
        };
        assert_eq!(first.len(), 2);
        assert_ne!(first[0], first[1]);
        let mut s = open(dir.path());
        s.restore();
        let later = s.push(&["a"], &msg(2)).unwrap();
        assert!(later[0] > first[1]);
    }

    #[test]
    fn pool_filters_come_back_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = open(dir.path());
            s.save_filter("a/#", "site-a/pool-0");
            s.save_filter("b", "site-a/pool-1");
            s.remove_filter("b");
            // Flushes the non-durable commits, as a session write would.
            s.save_session("c", &session(None, &[])).unwrap();
        }
        let r = open(dir.path()).restore();
        assert_eq!(
            r.pool_filters.into_iter().collect::<Vec<_>>(),
            [("a/#".to_owned(), "site-a/pool-0".to_owned())]
        );
    }
}
