//! One session's delivery state: in-flight QoS 1/2 messages with their packet
//! ids, the queue behind the in-flight window, and the packet ids of the
//! client's own QoS 2 publishes awaiting PUBREL. Offering and sending live
//! here; the client's acknowledgements in `session_acks.rs`, queue pressure
//! in `session_pressure.rs`, the will in `session_will.rs`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::api::{
    ClientKind, ConnId, Delivery, Outbound, Outbox, SessionExpiry, SubscriptionOptions,
};
use super::message::Message;
use super::out::Out;
use crate::qos::QoS;

/// Limits that apply to every session (or, given at connect, to one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Messages waiting behind the in-flight window (and QoS 0 not yet written).
    pub max_queued: usize,
    /// Unacknowledged QoS 1/2 deliveries at once (capped by the client's Receive Maximum).
    pub max_inflight: u16,
    /// Topic and payload bytes waiting behind the window; 0 = unlimited.
    pub max_queued_bytes: usize,
    /// The message comes from a publisher the core can slow down: an online
    /// session queues it past `max_queued` (up to [`overflow_cap`]) instead
    /// of dropping what the publisher has been acknowledged.
    pub overflow: bool,
}

/// The hard bound of a queue that overflows `max_queued` while its
/// publishers are being slowed. Reaching it needs every paused publisher to
/// have had a read buffer's worth in the pipeline, or a subscriber that stays
/// stuck across many timed resumes (see `mqtt::connection`); past it the
/// message is dropped and counted, as without back-pressure.
pub fn overflow_cap(max_queued: usize) -> usize {
    max_queued.saturating_mul(8).max(16_384)
}

/// What became of an offered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// Sent, queued within the bound, or skipped (expired, QoS 0 offline).
    Accepted,
    /// Queued past `max_queued`: the publisher should be slowed.
    OverBound,
    /// Dropped (and counted) because the queue was full.
    Dropped,
}

/// Delivery counters the core reports in `$SYS`.
#[derive(Debug, Default, Clone, Copy)]
pub struct DeliveryStats {
    /// Deliveries handed to connections.
    pub sent: u64,
    /// Messages dropped because a queue was full.
    pub dropped: u64,
    /// Of those, dropped because of `max_queued_bytes`.
    pub dropped_queued_bytes: u64,
    /// QoS 1/2 messages queued past `max_queued` while their publisher was slowed.
    pub overflowed: u64,
    /// MQTT-SN QoS 1/2 publishes refused with "congestion" because a
    /// subscriber queue was full.
    pub congested: u64,
    /// MQTT QoS 1/2 publishes refused because a subscriber queue was at its
    /// hard bound (the publisher was already being slowed).
    pub refused_at_cap: u64,
}

/// The live connection attached to a session.
#[derive(Debug, Clone)]
pub struct Link {
    /// Connection id.
    pub conn: ConnId,
    /// Its outbound queue.
    pub outbox: Outbox,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // named after the packet awaited
enum Awaiting {
    PubAck,
    PubRec,
    PubComp,
}

/// Where a delivery made through a shared subscription came from, so that it
/// can be offered to another member if this one goes away unacknowledged
/// (MQTT 5 §4.8.2).
#[derive(Debug, Clone, PartialEq)]
pub struct SharedOrigin {
    /// The `$share/group/filter` it matched.
    pub filter: Arc<str>,
    /// QoS as published, before the member's granted QoS capped it.
    pub qos: QoS,
    /// Retain flag as published.
    pub retain: bool,
}

/// A shared-subscription message taken back from a member that went away.
#[derive(Debug, Clone, PartialEq)]
pub struct Unacked {
    /// The message as it was offered to the member.
    pub message: Message,
    /// Its origin.
    pub origin: SharedOrigin,
}

#[derive(Debug)]
struct Inflight {
    seq: u64,
    message: Message,
    subscription_ids: Vec<u32>,
    awaiting: Awaiting,
    shared: Option<SharedOrigin>,
}

#[derive(Debug)]
struct Queued {
    seq: u64,
    message: Message,
    subscription_ids: Vec<u32>,
    shared: Option<SharedOrigin>,
}

/// A client session, attached or not.
#[derive(Debug)]
pub struct Session {
    /// Client identifier.
    pub client_id: Arc<str>,
    /// Protocol of the last connection.
    pub kind: ClientKind,
    /// User name of the last connection.
    pub username: Option<Arc<str>>,
    /// The attached connection, if any.
    pub link: Option<Link>,
    /// Subscriptions by filter.
    pub subscriptions: BTreeMap<Arc<str>, (SubscriptionOptions, Option<u32>)>,
    /// Session expiry interval.
    pub expiry: SessionExpiry,
    /// When an offline session ends (`None` while online or when it never expires).
    pub expires_at: Option<Instant>,
    /// The will state, boxed: present only while a will is set or due.
    will_state: Option<Box<will::WillState>>,
    /// The client's Receive Maximum.
    pub receive_maximum: u16,
    /// Packet ids of the client's QoS 2 publishes awaiting PUBREL [MQTT-4.3.3-2].
    pub incoming_qos2: BTreeSet<u16>,
    inflight: BTreeMap<u16, Inflight>,
    queue: VecDeque<Queued>,
    next_packet_id: u16,
    next_seq: u64,
    /// Record which deliveries change, for the durable store.
    pub track: bool,
    /// The store holds this session (its record and queue).
    pub persisted: bool,
    dirty: Vec<u64>,
    /// In a `max_queued_bytes` episode (logged once until the queue drains).
    bytes_full: bool,
    /// This session's own limits, replacing the broker-wide ones.
    /// Boxed: few sessions have their own.
    pub own_limits: Option<Box<SessionLimits>>,
    /// Queue-pressure state, boxed: present only once this queue has been full.
    pressure: Option<Box<pressure::Pressure>>,
}

impl Session {
    /// A fresh session.
    pub fn new(client_id: Arc<str>, kind: ClientKind) -> Session {
        Session {
            client_id,
            kind,
            username: None,
            link: None,
            subscriptions: BTreeMap::new(),
            expiry: 0,
            expires_at: None,
            will_state: None,
            receive_maximum: u16::MAX,
            incoming_qos2: BTreeSet::new(),
            inflight: BTreeMap::new(),
            queue: VecDeque::new(),
            next_packet_id: 1,
            next_seq: 0,
            track: false,
            persisted: false,
            dirty: Vec::new(),
            bytes_full: false,
            own_limits: None,
            pressure: None,
        }
    }

    fn touch(&mut self, seq: u64) {
        if self.track {
            self.dirty.push(seq);
        }
    }

    /// True while a connection is attached.
    pub fn is_online(&self) -> bool {
        self.link.is_some()
    }

    /// Messages queued behind the window.
    pub fn queued_len(&self) -> usize {
        self.queue.len()
    }

    /// Unacknowledged deliveries.
    pub fn inflight_len(&self) -> usize {
        self.inflight.len()
    }

    fn window(&self, limits: &SessionLimits) -> usize {
        let limits = self.own_limits.as_deref().unwrap_or(limits);
        usize::from(self.receive_maximum.min(limits.max_inflight).max(1))
    }

    fn send(&self, out: &mut Out, event: Outbound) {
        if let Some(link) = &self.link {
            out.send(&link.outbox, link.conn, event);
        }
    }

    /// Offers a message for delivery: sent now, queued, or dropped when full.
    pub fn offer(
        &mut self,
        message: Message,
        subscription_ids: Vec<u32>,
        now: Instant,
        limits: &SessionLimits,
        stats: &mut DeliveryStats,
        out: &mut Out,
    ) -> Offered {
        self.offer_from(message, subscription_ids, None, now, limits, stats, out)
    }

    /// Like [`Session::offer`], remembering the shared subscription the
    /// message came through, if any.
    #[allow(clippy::too_many_arguments)] // the delivery plus the core's context
    pub fn offer_from(
        &mut self,
        message: Message,
        subscription_ids: Vec<u32>,
        shared: Option<SharedOrigin>,
        now: Instant,
        limits: &SessionLimits,
        stats: &mut DeliveryStats,
        out: &mut Out,
    ) -> Offered {
        if message.is_expired(now) {
            return Offered::Accepted;
        }
        let own = self.own_limits.as_deref().copied();
        let limits = own.as_ref().unwrap_or(limits);
        if message.qos == QoS::AtMostOnce {
            // QoS 0 is never queued for an offline session (as in Mosquitto),
            // and is dropped rather than buffered without bound for a slow one.
            match &self.link {
                Some(link) if link.outbox.pending() < limits.max_queued => {
                    let delivery = Delivery {
                        packet_id: None,
                        message,
                        dup: false,
                        subscription_ids,
                    };
                    out.send(&link.outbox, link.conn, Outbound::Deliver(delivery));
                    stats.sent += 1;
                }
                Some(_) => {
                    stats.dropped += 1;
                    return Offered::Dropped;
                }
                None => {}
            }
            return Offered::Accepted;
        }
        if self.is_online() && self.queue.is_empty() && self.inflight.len() < self.window(limits) {
            self.next_seq += 1;
            let seq = self.next_seq;
            self.send_new(seq, message, subscription_ids, shared, out);
            stats.sent += 1;
            return Offered::Accepted;
        }
        let full = self.queue.len() >= limits.max_queued;
        // An online subscriber drains its queue, so the overflow is temporary
        // while the publisher is slowed; an offline one may never come back,
        // so its queue stays bounded and drops, as in Mosquitto.
        let may_overflow = limits.overflow
            && self.is_online()
            && self.queue.len() < overflow_cap(limits.max_queued);
        if (!full || may_overflow) && !self.over_queued_bytes(&message, limits) {
            self.bytes_full = false;
            self.next_seq += 1;
            let seq = self.next_seq;
            self.queue.push_back(Queued {
                seq,
                message,
                subscription_ids,
                shared,
            });
            self.touch(seq);
            return if full {
                stats.overflowed += 1;
                Offered::OverBound
            } else {
                Offered::Accepted
            };
        }
        if self.bytes_full {
            stats.dropped_queued_bytes += 1;
        }
        stats.dropped += 1;
        if own.is_some() {
            let pressure = self.pressure.get_or_insert_with(Box::default);
            pressure.refused += 1;
            let n = pressure.refused;
            // 1, 10, 100…: a long outage must not flood the log.
            if 10u64.pow(n.ilog10()) == n {
                tracing::warn!(
                    client_id = %self.client_id,
                    queued = self.queue.len(),
                    refused = n,
                    "Queue full: new QoS 1/2 messages for this session are dropped."
                );
            }
        }
        Offered::Dropped
    }

    fn allocate_packet_id(&mut self) -> u16 {
        loop {
            let id = self.next_packet_id;
            self.next_packet_id = self.next_packet_id.checked_add(1).unwrap_or(1);
            if !self.inflight.contains_key(&id) {
                return id;
            }
        }
    }

    fn send_new(
        &mut self,
        seq: u64,
        message: Message,
        subscription_ids: Vec<u32>,
        shared: Option<SharedOrigin>,
        out: &mut Out,
    ) {
        let packet_id = self.allocate_packet_id();
        let awaiting = if message.qos == QoS::ExactlyOnce {
            Awaiting::PubRec
        } else {
            Awaiting::PubAck
        };
        let delivery = Delivery {
            packet_id: Some(packet_id),
            message: message.clone(),
            dup: false,
            subscription_ids: subscription_ids.clone(),
        };
        self.inflight.insert(
            packet_id,
            Inflight {
                seq,
                message,
                subscription_ids,
                awaiting,
                shared,
            },
        );
        self.touch(seq);
        self.send(out, Outbound::Deliver(delivery));
    }

    /// Moves queued messages into the window while there is room.
    pub fn pump(
        &mut self,
        now: Instant,
        limits: &SessionLimits,
        stats: &mut DeliveryStats,
        out: &mut Out,
    ) {
        while self.is_online() && self.inflight.len() < self.window(limits) {
            let Some(next) = self.queue.pop_front() else {
                break;
            };
            if next.message.is_expired(now) {
                self.touch(next.seq);
                continue;
            }
            self.send_new(
                next.seq,
                next.message,
                next.subscription_ids,
                next.shared,
                out,
            );
            stats.sent += 1;
        }
        // Low-water mark at half the bound: resuming at the bound itself
        // would pause and resume the publishers on every acknowledgement.
        if self
            .pressure
            .as_ref()
            .is_some_and(|p| !p.blocked.is_empty())
            && self.queue.len() <= limits.max_queued / 2
        {
            self.release_publishers();
        }
    }

    /// Drops all delivery state (clean start, or the session ended).
    pub fn clear_delivery_state(&mut self) {
        self.release_publishers();
        self.inflight.clear();
        self.queue.clear();
        self.incoming_qos2.clear();
    }
}

#[path = "session_pressure.rs"]
mod pressure;

#[path = "session_acks.rs"]
mod acks;

#[path = "session_will.rs"]
mod will;

#[path = "session_entries.rs"]
mod entries;
pub use entries::EntryView;

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
