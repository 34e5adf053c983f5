//! What the core tells the durable store: state changes of persistent
//! sessions and retained messages become [`StoreOp`]s, collected per batch
//! and committed by the core task before the batch's events are released.
//!
//! Times are stored as wall-clock unix milliseconds, so that session and
//! message expiry keep counting across a restart.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::warn;

use super::api::{ClientKind, Outbound, PublishOutcome, Will};
use super::core::Broker;
use super::message::{Message, MessageProperties};
use super::session::{EntryView, Session};
use super::subscriptions::SessionKey;
use crate::qos::QoS;
use crate::store::{
    MessageRecord, PropertiesRecord, QueueEntry, SessionRecord, SnTopicsRecord, StoreOp,
    SubscriptionRecord, WillRecord,
};

/// Now as unix milliseconds.
pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Maps the core's monotonic `Instant`s to wall-clock unix milliseconds and back.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    at: Instant,
    unix_ms: u64,
}

impl WallClock {
    /// The clock on which `at` is `unix_ms`.
    pub fn new(at: Instant, unix_ms: u64) -> WallClock {
        WallClock { at, unix_ms }
    }

    /// The unix time of `t`.
    pub fn to_ms(&self, t: Instant) -> u64 {
        if t >= self.at {
            let d = u64::try_from(t.duration_since(self.at).as_millis()).unwrap_or(u64::MAX);
            self.unix_ms.saturating_add(d)
        } else {
            let d = u64::try_from(self.at.duration_since(t).as_millis()).unwrap_or(u64::MAX);
            self.unix_ms.saturating_sub(d)
        }
    }

    /// The `Instant` of unix time `ms`; a time already past maps to the
    /// clock's origin or earlier, so that it reads as due.
    pub fn to_instant(&self, ms: u64) -> Instant {
        if ms >= self.unix_ms {
            self.at + Duration::from_millis(ms - self.unix_ms)
        } else {
            self.at
                .checked_sub(Duration::from_millis(self.unix_ms - ms))
                .unwrap_or(self.at)
        }
    }
}

/// The stored number of a [`ClientKind`].
pub fn kind_to_u8(kind: ClientKind) -> u8 {
    match kind {
        ClientKind::Internal => 0,
        ClientKind::MqttSn => 1,
        ClientKind::Bridge => 2,
        ClientKind::Mqtt3 => 3,
        ClientKind::Mqtt5 => 5,
    }
}

/// The [`ClientKind`] of a stored number (unknown numbers read as MQTT 3).
pub fn kind_from_u8(v: u8) -> ClientKind {
    match v {
        0 => ClientKind::Internal,
        1 => ClientKind::MqttSn,
        2 => ClientKind::Bridge,
        5 => ClientKind::Mqtt5,
        _ => ClientKind::Mqtt3,
    }
}

/// A message as stored.
pub fn message_record(m: &Message, clock: &WallClock) -> MessageRecord {
    MessageRecord {
        topic: m.topic.to_string(),
        payload: m.payload.clone(),
        qos: m.qos.as_u8(),
        retain: m.retain,
        properties: m.properties.as_deref().map(|p| PropertiesRecord {
            payload_format_utf8: p.payload_format_utf8,
            content_type: p.content_type.as_deref().map(str::to_string),
            response_topic: p.response_topic.as_deref().map(str::to_string),
            correlation_data: p.correlation_data.clone(),
            user_properties: p
                .user_properties
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }),
        expires_at_ms: m.expires_at.map(|t| clock.to_ms(t)),
        publisher: m.publisher.as_deref().map(str::to_string),
    }
}

/// A stored message back in the core's form.
pub fn message_from_record(r: MessageRecord, clock: &WallClock) -> Message {
    Message {
        topic: Arc::from(r.topic),
        payload: r.payload,
        qos: QoS::from_u8(r.qos).unwrap_or(QoS::AtLeastOnce),
        retain: r.retain,
        properties: r.properties.map(|p| {
            Arc::new(MessageProperties {
                payload_format_utf8: p.payload_format_utf8,
                content_type: p.content_type.map(Arc::from),
                response_topic: p.response_topic.map(Arc::from),
                correlation_data: p.correlation_data,
                user_properties: p
                    .user_properties
                    .into_iter()
                    .map(|(k, v)| (Arc::from(k), Arc::from(v)))
                    .collect(),
            })
        }),
        expires_at: r.expires_at_ms.map(|ms| clock.to_instant(ms)),
        publisher: r.publisher.map(Arc::from),
    }
}

fn will_record(w: &Will, clock: &WallClock) -> WillRecord {
    WillRecord {
        message: message_record(&w.message, clock),
        delay_secs: w.delay,
    }
}

/// A session's stored record (its queue is stored entry by entry).
pub fn session_record(s: &Session, clock: &WallClock) -> SessionRecord {
    let mut subscriptions: Vec<SubscriptionRecord> = s
        .subscriptions
        .iter()
        .map(|(filter, (o, id))| SubscriptionRecord {
            filter: filter.to_string(),
            qos: o.qos.as_u8(),
            no_local: o.no_local,
            retain_as_published: o.retain_as_published,
            retain_handling: o.retain_handling,
            subscription_id: *id,
        })
        .collect();
    subscriptions.sort_by(|a, b| a.filter.cmp(&b.filter));
    // A waiting delayed will is the one that matters after a restart; the
    // attached connection's will otherwise.
    let (will, will_due_ms) = match s.will_due() {
        Some((due, w)) => (Some(will_record(w, clock)), Some(clock.to_ms(*due))),
        None => (s.will().map(|w| will_record(w, clock)), None),
    };
    SessionRecord {
        client_id: s.client_id.to_string(),
        kind: kind_to_u8(s.kind),
        username: s.username.as_deref().map(str::to_string),
        expiry_secs: s.expiry,
        expires_at_ms: s.expires_at.map(|t| clock.to_ms(t)),
        subscriptions,
        will,
        will_due_ms,
    }
}

fn queue_entry(e: EntryView<'_>, clock: &WallClock) -> QueueEntry {
    QueueEntry {
        seq: e.seq,
        message: message_record(e.message, clock),
        subscription_ids: e.subscription_ids.to_vec(),
        state: e.state,
    }
}

/// The state changes of the current batch, waiting to become store ops.
#[derive(Debug)]
pub struct Journal {
    /// Instant ↔ unix ms.
    pub clock: WallClock,
    /// Ops already decided, in order.
    pub ops: Vec<StoreOp>,
    /// Sessions whose record may have changed.
    pub records: HashSet<SessionKey>,
    /// Sessions whose queue may have changed.
    pub queues: HashSet<SessionKey>,
}

impl Journal {
    /// An empty journal.
    pub fn new(clock: WallClock) -> Journal {
        Journal {
            clock,
            ops: Vec::new(),
            records: HashSet::new(),
            queues: HashSet::new(),
        }
    }

    /// Records a retained message being set or cleared. `$` topics (`$SYS`)
    /// are the broker's own and are not kept.
    pub fn retained(&mut self, m: &Message) {
        if m.topic.starts_with('$') {
            return;
        }
        if m.payload.is_empty() {
            self.ops.push(StoreOp::DeleteRetained(m.topic.to_string()));
        } else {
            self.ops
                .push(StoreOp::PutRetained(message_record(m, &self.clock)));
        }
    }

    /// Records that a stored session ended: it goes with its queue, its
    /// incoming QoS 2 ids and (for a sensor) its topic registrations.
    pub fn forget_session(&mut self, s: &Session) {
        forget_session_ops(s, &mut self.ops);
    }
}

impl Broker {
    /// Turns persistence on: from now on state changes are journaled and
    /// outbound events held until [`Broker::commit_succeeded`] or
    /// [`Broker::commit_failed`]. `wall_now` is unix ms at `now`.
    pub fn enable_persistence(&mut self, now: Instant, wall_now: u64) {
        self.journal = Some(Journal::new(WallClock::new(now, wall_now)));
        self.out = super::out::Out::holding();
        for s in self.sessions.values_mut() {
            s.track = s.expiry > 0;
        }
    }

    /// True when persistence is on.
    pub fn persistence_enabled(&self) -> bool {
        self.journal.is_some()
    }

    /// True while QoS 1/2 publishes are refused because the store failed.
    pub fn store_failing(&self) -> bool {
        self.store_failing
    }

    pub(super) fn mark_record(&mut self, key: SessionKey) {
        if let Some(j) = self.journal.as_mut() {
            j.records.insert(key);
        }
    }

    pub(super) fn mark_queue(&mut self, key: SessionKey) {
        if let Some(j) = self.journal.as_mut() {
            j.queues.insert(key);
        }
    }

    /// Remembers an incoming QoS 2 packet id; false if it was already known.
    pub(super) fn note_incoming_qos2(&mut self, key: SessionKey, packet_id: u16) -> bool {
        let Some(s) = self.sessions.get_mut(&key) else {
            return true;
        };
        let new = s.incoming_qos2.insert(packet_id);
        if new
            && s.track
            && let Some(j) = self.journal.as_mut()
        {
            j.ops.push(StoreOp::PutIncomingQos2 {
                client_id: s.client_id.to_string(),
                packet_id,
            });
        }
        new
    }

    /// PUBREL from a publisher: forget its QoS 2 id and answer PUBCOMP.
    pub(super) fn client_pubrel(&mut self, conn: super::api::ConnId, packet_id: u16) {
        let Some(&key) = self.by_conn.get(&conn) else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&key) else {
            return;
        };
        let found = s.incoming_qos2.remove(&packet_id);
        if found
            && s.track
            && let Some(j) = self.journal.as_mut()
        {
            j.ops.push(StoreOp::DeleteIncomingQos2 {
                client_id: s.client_id.to_string(),
                packet_id,
            });
        }
        if let Some(link) = &s.link {
            self.out.send(
                &link.outbox,
                link.conn,
                Outbound::PubComp { packet_id, found },
            );
        }
    }

    /// Stores a sensor's topic registrations with its persistent session;
    /// an empty table, or a session that is not persistent, stores nothing.
    pub(super) fn persist_sensor_topics(&mut self, client_id: &str, topics: Vec<(u16, Arc<str>)>) {
        let Some(j) = self.journal.as_mut() else {
            return;
        };
        let durable = self
            .by_client
            .get(client_id)
            .and_then(|k| self.sessions.get(k))
            .is_some_and(|s| s.expiry > 0);
        if durable && !topics.is_empty() {
            j.ops.push(StoreOp::PutSnTopics(SnTopicsRecord {
                client_id: client_id.to_string(),
                topics: topics
                    .into_iter()
                    .map(|(id, name)| (id, name.to_string()))
                    .collect(),
            }));
        } else {
            j.ops.push(StoreOp::DeleteSnTopics(client_id.to_string()));
        }
    }

    /// The store ops of everything handled since the last call, in order.
    /// Empty when persistence is off or nothing durable changed.
    pub fn take_ops(&mut self) -> Vec<StoreOp> {
        let Some(j) = self.journal.as_mut() else {
            return Vec::new();
        };
        let mut ops = std::mem::take(&mut j.ops);
        for key in j.records.drain() {
            let Some(s) = self.sessions.get_mut(&key) else {
                continue;
            };
            if s.expiry > 0 {
                ops.push(StoreOp::PutSession(session_record(s, &j.clock)));
                if !s.persisted {
                    // Newly persistent: everything it already holds goes too.
                    s.persisted = true;
                    s.track = true;
                    j.queues.insert(key);
                    s.take_dirty();
                    for seq in s.seqs() {
                        if let Some(e) = s.entry(seq) {
                            ops.push(StoreOp::PutQueueEntry {
                                client_id: s.client_id.to_string(),
                                entry: queue_entry(e, &j.clock),
                            });
                        }
                    }
                    let mut ids: Vec<u16> = s.incoming_qos2.iter().copied().collect();
                    ids.sort_unstable();
                    for packet_id in ids {
                        ops.push(StoreOp::PutIncomingQos2 {
                            client_id: s.client_id.to_string(),
                            packet_id,
                        });
                    }
                }
            } else if s.persisted {
                s.persisted = false;
                s.track = false;
                s.take_dirty();
                forget_session_ops(s, &mut ops);
            }
        }
        for key in j.queues.drain() {
            let Some(s) = self.sessions.get_mut(&key) else {
                continue;
            };
            let mut seqs = s.take_dirty();
            if !s.persisted || seqs.is_empty() {
                continue;
            }
            seqs.sort_unstable();
            seqs.dedup();
            for seq in seqs {
                ops.push(match s.entry(seq) {
                    Some(e) => StoreOp::PutQueueEntry {
                        client_id: s.client_id.to_string(),
                        entry: queue_entry(e, &j.clock),
                    },
                    None => StoreOp::DeleteQueueEntry {
                        client_id: s.client_id.to_string(),
                        seq,
                    },
                });
            }
        }
        ops
    }

    /// Sends the held events of a batch that changed nothing durable.
    pub fn release_held(&mut self) {
        self.out.release();
    }

    /// The batch's ops are committed: its held events go out.
    pub fn commit_succeeded(&mut self) {
        if self.store_failing {
            warn!("persistence: the store accepts writes again; QoS 1/2 publishes are accepted");
        }
        self.store_failing = false;
        self.out.release();
    }

    /// The batch's ops could not be committed (the caller keeps them to
    /// retry). Its PUBACK/PUBREC become refusals (0x97): nothing that was
    /// not kept is acknowledged. Everything else still goes out: the state
    /// is kept in memory and is written once the store accepts writes again.
    /// Until then new QoS 1/2 publishes are refused; QoS 0 keeps flowing.
    pub fn commit_failed(&mut self) {
        self.store_failing = true;
        for (outbox, conn, event) in self.out.take() {
            let event = match event {
                Outbound::PubAck { packet_id, outcome } if outcome.is_success() => {
                    Outbound::PubAck {
                        packet_id,
                        outcome: PublishOutcome::QuotaExceeded,
                    }
                }
                Outbound::PubRec { packet_id, outcome } if outcome.is_success() => {
                    // A refused QoS 2 publish ends its exchange: its id may be
                    // reused for another message [MQTT 5 §4.3.3].
                    self.forget_incoming_qos2(conn, packet_id);
                    Outbound::PubRec {
                        packet_id,
                        outcome: PublishOutcome::QuotaExceeded,
                    }
                }
                other => other,
            };
            outbox.send(conn, event);
        }
    }

    fn forget_incoming_qos2(&mut self, conn: super::api::ConnId, packet_id: u16) {
        let Some(s) = self
            .by_conn
            .get(&conn)
            .and_then(|k| self.sessions.get_mut(k))
        else {
            return;
        };
        if s.incoming_qos2.remove(&packet_id)
            && s.track
            && let Some(j) = self.journal.as_mut()
        {
            j.ops.push(StoreOp::DeleteIncomingQos2 {
                client_id: s.client_id.to_string(),
                packet_id,
            });
        }
    }
}

/// Ops that remove a stored session, its queue, its incoming QoS 2 ids and
/// (for a sensor) its topic registrations.
fn forget_session_ops(s: &Session, ops: &mut Vec<StoreOp>) {
    ops.push(StoreOp::DeleteSession(s.client_id.to_string()));
    if s.kind == ClientKind::MqttSn {
        ops.push(StoreOp::DeleteSnTopics(s.client_id.to_string()));
    }
}
