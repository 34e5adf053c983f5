//! Aggregating mode's own bookkeeping: which sensors want which filters on
//! which pool connection, the fan-out of what the pool receives, and the
//! sessions of persistent sensors while they are away. Persistent sessions
//! are also written to the [`SessionStore`](super::SessionStore) as they
//! change, so that a restart finds them (see `restore.rs`).

use std::collections::{BTreeMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::{Pending, Router};
use crate::broker::persist::{WallClock, unix_ms_now};
use crate::broker::{ConnId, Delivery, Message, Outbound};
use crate::mqtt::codec::{Packet, Unsubscribe, UnsubscribeProperties};
use crate::qos::QoS;
use crate::upstream::link::LinkId;
use crate::upstream::sessions::{SessionSeq, StoredSession};

/// A message for a sensor, with its number in the session store when it is
/// kept there (persistent sensors, QoS 1/2, persistence on).
pub(super) type Queued = (Option<SessionSeq>, Message);

/// Sensors subscribed to one filter on one pool link.
pub(super) struct FilterEntry {
    /// The pool link that holds the upstream subscription.
    pub(super) link: LinkId,
    /// Connected sensors, each with its granted QoS.
    pub(super) conns: BTreeMap<ConnId, QoS>,
    /// Persistent sensors that are away, by client id.
    pub(super) away: BTreeMap<Arc<str>, QoS>,
}

/// A persistent (clean session 0) sensor's session while it is away —
/// disconnected or lost: its subscriptions stay and what they match is
/// queued, as the built-in core does (MQTT-SN 1.2 §6.3, [MQTT-3.1.2-5]).
pub(super) struct Away {
    pub(super) subs: BTreeMap<Arc<str>, QoS>,
    pub(super) queue: VecDeque<Queued>,
    pub(super) expires_at: Instant,
}

/// What a returning sensor gets back of its session.
pub(super) struct Resumed {
    /// Its subscriptions.
    pub(super) subs: BTreeMap<Arc<str>, QoS>,
    /// Messages queued while it was away, oldest first.
    pub(super) queue: VecDeque<Queued>,
}

/// The pool link a client id or filter is spread to.
pub(super) fn bucket(key: &str, n: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    usize::try_from(h.finish() % u64::try_from(n.max(1)).unwrap_or(1)).unwrap_or(0)
}

impl Router {
    pub(super) fn add_filter(&mut self, conn: ConnId, filter: &Arc<str>, qos: QoS, link: LinkId) {
        if !self.filters.contains_key(filter) {
            // A persistent pool session keeps the subscription across a
            // restart: the next run must know it is there.
            if let Some(l) = self.links.get_mut(&link) {
                l.stale.remove(filter);
                self.sessions.save_filter(filter, &l.key);
            }
        }
        self.filters
            .entry(filter.clone())
            .or_insert_with(|| FilterEntry {
                link,
                conns: BTreeMap::new(),
                away: BTreeMap::new(),
            })
            .conns
            .insert(conn, qos);
    }

    /// Writes a persistent sensor's session down; `away_until` is when an
    /// away sensor's session expires.
    pub(super) fn save_session(
        &mut self,
        client_id: &str,
        subs: &BTreeMap<Arc<str>, QoS>,
        expiry: u32,
        away_until: Option<Instant>,
    ) {
        let clock = WallClock::new(Instant::now(), unix_ms_now());
        let stored = StoredSession {
            expiry_secs: expiry,
            away_until_ms: away_until.map(|t| clock.to_ms(t).max(1)),
            subs: subs.iter().map(|(f, q)| (f.to_string(), *q)).collect(),
        };
        if let Err(e) = self.sessions.save_session(client_id, &stored) {
            error!(
                client_id,
                "persistent session of MQTT-SN client {client_id} not written to disk: {e}"
            );
        }
    }

    /// Writes down a connected persistent sensor's session after its
    /// subscriptions changed.
    pub(super) fn save_conn_session(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get(&conn).filter(|c| !c.clean) else {
            return;
        };
        let (id, subs, expiry) = (c.client_id.clone(), c.subs.clone(), c.session_expiry);
        self.save_session(&id, &subs, expiry, None);
    }

    /// Removes `conn` from a filter; the pool unsubscribes once nobody is left.
    pub(super) fn remove_filter(&mut self, conn: ConnId, filter: &Arc<str>) -> bool {
        let Some(e) = self.filters.get_mut(filter) else {
            return false;
        };
        let removed = e.conns.remove(&conn).is_some();
        self.unsubscribe_if_unused(filter);
        removed
    }

    fn unsubscribe_if_unused(&mut self, filter: &Arc<str>) {
        let Some(e) = self.filters.get(filter) else {
            return;
        };
        if !e.conns.is_empty() || !e.away.is_empty() {
            return;
        }
        let link = e.link;
        self.filters.remove(filter);
        if let Some(l) = self.links.get_mut(&link)
            && !l.up
        {
            // A persistent pool session still has it: unsubscribed on return.
            l.stale.insert(filter.clone());
            l.fresh.remove(filter);
        } else if let Some(l) = self.links.get_mut(&link) {
            self.sessions.remove_filter(filter);
            let id = l.control_id();
            l.pending.insert(id, Pending::Internal);
            l.handle.send(Packet::Unsubscribe(Unsubscribe {
                packet_id: id,
                filters: vec![filter.to_string()],
                properties: UnsubscribeProperties::default(),
            }));
        }
    }

    /// A persistent sensor went away: its subscriptions keep collecting
    /// messages until it returns or its session expires.
    pub(super) fn park(
        &mut self,
        now: Instant,
        conn: ConnId,
        client_id: Arc<str>,
        subs: BTreeMap<Arc<str>, QoS>,
        backlog: VecDeque<Queued>,
        expiry: u32,
    ) {
        for (filter, qos) in &subs {
            if let Some(e) = self.filters.get_mut(filter) {
                e.conns.remove(&conn);
                e.away.insert(client_id.clone(), *qos);
            }
        }
        let expires_at = now + Duration::from_secs(u64::from(expiry));
        self.save_session(&client_id, &subs, expiry, Some(expires_at));
        self.away.insert(
            client_id,
            Away {
                subs,
                queue: backlog,
                expires_at,
            },
        );
    }

    /// A sensor connects: a persistent one gets its session back, a clean one
    /// ends the one it had.
    pub(super) fn resume(
        &mut self,
        now: Instant,
        conn: ConnId,
        client_id: &Arc<str>,
        clean: bool,
        expiry: u32,
    ) -> Option<Resumed> {
        self.expire_away(now);
        let away = self.away.remove(client_id)?;
        if clean {
            self.sessions.remove_session(client_id);
        } else {
            self.save_session(client_id, &away.subs, expiry, None);
        }
        for filter in away.subs.keys() {
            if let Some(e) = self.filters.get_mut(filter)
                && let Some(qos) = e.away.remove(client_id)
                && !clean
            {
                e.conns.insert(conn, qos);
            }
            self.unsubscribe_if_unused(filter);
        }
        (!clean).then_some(Resumed {
            subs: away.subs,
            queue: away.queue,
        })
    }

    /// Forgets the sessions of sensors away for longer than their expiry.
    fn expire_away(&mut self, now: Instant) {
        let expired: Vec<Arc<str>> = self
            .away
            .iter()
            .filter(|(_, a)| a.expires_at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            let Some(a) = self.away.remove(&id) else {
                continue;
            };
            info!(client_id = %id, "persistent session of MQTT-SN client {id} expired ({} queued messages dropped)", a.queue.len());
            self.sessions.remove_session(&id);
            for filter in a.subs.keys() {
                if let Some(e) = self.filters.get_mut(filter) {
                    e.away.remove(&id);
                }
                self.unsubscribe_if_unused(filter);
            }
        }
    }

    /// Delivers a message from the pool to every sensor whose subscription
    /// matches, at the lower of the message's and the granted QoS, and queues
    /// it for persistent sensors that are away. What persistent sensors get
    /// at QoS 1/2 is written to the session store first; false when that
    /// write failed and nothing was delivered: the upstream must not be told
    /// the message was taken over.
    pub(super) fn fan_out(&mut self, now: Instant, link: LinkId, message: Message) -> bool {
        self.expire_away(now);
        let mut targets: BTreeMap<ConnId, QoS> = BTreeMap::new();
        let mut absent: BTreeMap<Arc<str>, QoS> = BTreeMap::new();
        // Each filter is subscribed on one pool link only: a message that
        // matches filters on two links arrives twice, once for each.
        for (filter, e) in &self.filters {
            if e.link == link && crate::mqtt::topic::matches(filter, &message.topic) {
                for (conn, q) in &e.conns {
                    let t = targets.entry(*conn).or_insert(*q);
                    *t = (*t).max(*q);
                }
                for (id, q) in &e.away {
                    let t = absent.entry(id.clone()).or_insert(*q);
                    *t = (*t).max(*q);
                }
            }
        }
        // QoS 0 is not kept for an absent client [MQTT-3.1.2-5].
        absent.retain(|_, q| (*q).min(message.qos) != QoS::AtMostOnce);
        for id in absent.keys() {
            if self
                .away
                .get(id)
                .is_some_and(|a| a.queue.len() >= self.max_queued)
            {
                self.stats
                    .dropped_deliveries
                    .fetch_add(1, Ordering::Relaxed);
                warn!(client_id = %id, "message for away MQTT-SN client {id} dropped: its queue is full");
            }
        }
        absent.retain(|id, _| {
            self.away
                .get(id)
                .is_some_and(|a| a.queue.len() < self.max_queued)
        });
        let Some(mut seqs) = self.store_for(&targets, &absent, &message) else {
            return false;
        };
        for (conn, granted) in targets {
            let mut m = message.clone();
            m.qos = granted.min(message.qos);
            let seq = self
                .conns
                .get(&conn)
                .and_then(|c| seqs.remove(&c.client_id));
            self.deliver(conn, (seq, m));
        }
        for (id, granted) in absent {
            let seq = seqs.remove(&id);
            let Some(a) = self.away.get_mut(&id) else {
                continue;
            };
            let mut m = message.clone();
            m.qos = granted.min(message.qos);
            a.queue.push_back((seq, m));
        }
        true
    }

    /// Writes `message` once for every persistent recipient that gets it at
    /// QoS 1/2, in one commit; their sequence numbers by client id.
    fn store_for(
        &mut self,
        targets: &BTreeMap<ConnId, QoS>,
        absent: &BTreeMap<Arc<str>, QoS>,
        message: &Message,
    ) -> Option<BTreeMap<Arc<str>, SessionSeq>> {
        if !self.sessions.durable() || message.qos == QoS::AtMostOnce {
            return Some(BTreeMap::new());
        }
        let mut keep: Vec<Arc<str>> = targets
            .iter()
            .filter(|(_, q)| **q != QoS::AtMostOnce)
            .filter_map(|(conn, _)| self.conns.get(conn).filter(|c| !c.clean))
            .map(|c| c.client_id.clone())
            .collect();
        keep.extend(absent.keys().cloned());
        keep.sort();
        keep.dedup();
        if keep.is_empty() {
            return Some(BTreeMap::new());
        }
        let ids: Vec<&str> = keep.iter().map(|k| &**k).collect();
        match self.sessions.push(&ids, message) {
            Ok(seqs) => Some(keep.into_iter().zip(seqs).collect()),
            Err(e) => {
                error!(topic = %message.topic, "message from the upstream not written to disk, left with the upstream: {e}");
                None
            }
        }
    }

    /// Hands a message to a connected sensor; past its window of
    /// unacknowledged deliveries it waits in the sensor's backlog.
    pub(super) fn deliver(&mut self, conn: ConnId, queued: Queued) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let (seq, message) = queued;
        let packet_id = if message.qos == QoS::AtMostOnce {
            None
        } else {
            if c.out_inflight.len() >= c.receive_maximum {
                if c.backlog.len() >= self.max_queued {
                    self.stats
                        .dropped_deliveries
                        .fetch_add(1, Ordering::Relaxed);
                    warn!(client_id = %c.client_id, "delivery to MQTT-SN client {} dropped: too many queued messages for this sensor", c.client_id);
                    if let Some(seq) = seq {
                        self.sessions.remove_message(&c.client_id, seq);
                    }
                } else {
                    c.backlog.push_back((seq, message));
                }
                return;
            }
            let mut id = c.next_packet_id;
            while c.out_inflight.contains_key(&id) {
                id = id.checked_add(1).unwrap_or(1);
            }
            c.next_packet_id = id.checked_add(1).unwrap_or(1);
            c.out_inflight
                .insert(id, (c.sent, Some((seq, message.clone()))));
            c.sent += 1;
            Some(id)
        };
        self.stats.delivered.fetch_add(1, Ordering::Relaxed);
        c.outbox.send(
            conn,
            Outbound::Deliver(Delivery {
                packet_id,
                message,
                dup: false,
                subscription_ids: Vec::new(),
            }),
        );
    }

    /// The sensor has a delivery (PUBACK, or PUBREC for QoS 2): it is never
    /// sent again, so the store forgets it.
    pub(super) fn delivery_received(&mut self, conn: ConnId, packet_id: u16) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if let Some((_, m)) = c.out_inflight.get_mut(&packet_id)
            && let Some((Some(seq), _)) = m.take()
        {
            self.sessions.remove_message(&c.client_id, seq);
        }
    }

    /// A delivery completed: the next one waiting in the backlog goes out.
    pub(super) fn delivery_done(&mut self, conn: ConnId, packet_id: u16) {
        self.delivery_received(conn, packet_id);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.out_inflight.remove(&packet_id);
        if let Some(next) = c.backlog.pop_front() {
            self.deliver(conn, next);
        }
    }
}
