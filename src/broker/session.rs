//! One session's delivery state: in-flight QoS 1/2 messages with their packet
//! ids, the queue behind the in-flight window, and the packet ids of the
//! client's own QoS 2 publishes awaiting PUBREL.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::api::{
    ClientKind, ConnId, Delivery, Outbound, Outbox, SessionExpiry, SubscriptionOptions, Will,
};
use super::message::Message;
use crate::qos::QoS;

/// Limits that apply to every session.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Messages waiting behind the in-flight window (and QoS 0 not yet written).
    pub max_queued: usize,
    /// Unacknowledged QoS 1/2 deliveries at once (capped by the client's Receive Maximum).
    pub max_inflight: u16,
    /// Topic and payload bytes waiting behind the window; 0 = unlimited.
    pub max_queued_bytes: usize,
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
    pub subscriptions: HashMap<Arc<str>, (SubscriptionOptions, Option<u32>)>,
    /// Session expiry interval.
    pub expiry: SessionExpiry,
    /// When an offline session ends (`None` while online or when it never expires).
    pub expires_at: Option<Instant>,
    /// The will of the attached connection.
    pub will: Option<Will>,
    /// When `will` was set: its message expiry is counted from when it is
    /// published, not from CONNECT (MQTT 5 §3.1.3.2.4).
    pub will_since: Option<Instant>,
    /// A will waiting for its delay to pass (MQTT 5 §3.1.3.2.2); its expiry
    /// is already counted from the due time.
    pub will_due: Option<(Instant, Will)>,
    /// The client's Receive Maximum.
    pub receive_maximum: u16,
    /// Packet ids of the client's QoS 2 publishes awaiting PUBREL [MQTT-4.3.3-2].
    pub incoming_qos2: HashSet<u16>,
    inflight: HashMap<u16, Inflight>,
    queue: VecDeque<Queued>,
    next_packet_id: u16,
    next_seq: u64,
    /// In a `max_queued_bytes` episode (logged once until the queue drains).
    bytes_full: bool,
}

impl Session {
    /// A fresh session.
    pub fn new(client_id: Arc<str>, kind: ClientKind) -> Session {
        Session {
            client_id,
            kind,
            username: None,
            link: None,
            subscriptions: HashMap::new(),
            expiry: 0,
            expires_at: None,
            will: None,
            will_since: None,
            will_due: None,
            receive_maximum: u16::MAX,
            incoming_qos2: HashSet::new(),
            inflight: HashMap::new(),
            queue: VecDeque::new(),
            next_packet_id: 1,
            next_seq: 0,
            bytes_full: false,
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
        usize::from(self.receive_maximum.min(limits.max_inflight).max(1))
    }

    fn send(&self, event: Outbound) -> bool {
        match &self.link {
            Some(link) => link.outbox.send(link.conn, event),
            None => false,
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
    ) {
        self.offer_from(message, subscription_ids, None, now, limits, stats);
    }

    /// Like [`Session::offer`], remembering the shared subscription the
    /// message came through, if any.
    pub fn offer_from(
        &mut self,
        message: Message,
        subscription_ids: Vec<u32>,
        shared: Option<SharedOrigin>,
        now: Instant,
        limits: &SessionLimits,
        stats: &mut DeliveryStats,
    ) {
        if message.is_expired(now) {
            return;
        }
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
                    link.outbox.send(link.conn, Outbound::Deliver(delivery));
                    stats.sent += 1;
                }
                Some(_) => stats.dropped += 1,
                None => {}
            }
            return;
        }
        if self.is_online() && self.queue.is_empty() && self.inflight.len() < self.window(limits) {
            self.send_new(message, subscription_ids, shared);
            stats.sent += 1;
        } else if self.queue.len() < limits.max_queued && !self.over_queued_bytes(&message, limits)
        {
            self.bytes_full = false;
            self.queue.push_back(Queued {
                message,
                subscription_ids,
                shared,
            });
        } else {
            if self.bytes_full {
                stats.dropped_queued_bytes += 1;
            }
            stats.dropped += 1;
        }
    }

    /// Whether queueing `message` would pass `max_queued_bytes`; counted and
    /// logged once per episode. Summed on demand so that sessions without
    /// the limit carry no extra state.
    fn over_queued_bytes(&mut self, message: &Message, limits: &SessionLimits) -> bool {
        if limits.max_queued_bytes == 0 {
            return false;
        }
        let size = |m: &Message| m.topic.len() + m.payload.len();
        let queued: usize = self.queue.iter().map(|q| size(&q.message)).sum();
        let over = queued.saturating_add(size(message)) > limits.max_queued_bytes;
        if over && !self.bytes_full {
            self.bytes_full = true;
            tracing::info!(
                client_id = %self.client_id,
                queued_bytes = queued,
                max_queued_bytes = limits.max_queued_bytes,
                "Outgoing messages dropped: max_queued_bytes reached."
            );
        }
        over
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
        message: Message,
        subscription_ids: Vec<u32>,
        shared: Option<SharedOrigin>,
    ) {
        let packet_id = self.allocate_packet_id();
        let awaiting = if message.qos == QoS::ExactlyOnce {
            Awaiting::PubRec
        } else {
            Awaiting::PubAck
        };
        self.next_seq += 1;
        let delivery = Delivery {
            packet_id: Some(packet_id),
            message: message.clone(),
            dup: false,
            subscription_ids: subscription_ids.clone(),
        };
        self.inflight.insert(
            packet_id,
            Inflight {
                seq: self.next_seq,
                message,
                subscription_ids,
                awaiting,
                shared,
            },
        );
        self.send(Outbound::Deliver(delivery));
    }

    /// Moves queued messages into the window while there is room.
    pub fn pump(&mut self, now: Instant, limits: &SessionLimits, stats: &mut DeliveryStats) {
        while self.is_online() && self.inflight.len() < self.window(limits) {
            let Some(next) = self.queue.pop_front() else {
                break;
            };
            if next.message.is_expired(now) {
                continue;
            }
            self.send_new(next.message, next.subscription_ids, next.shared);
            stats.sent += 1;
        }
    }

    /// Re-sends unacknowledged deliveries after a reconnect, in their original
    /// order, PUBLISH with DUP set and PUBREL for those already PUBREC'd
    /// [MQTT-4.4.0-1].
    pub fn resend_inflight(&mut self) {
        let mut order: Vec<(u64, u16)> = self.inflight.iter().map(|(id, f)| (f.seq, *id)).collect();
        order.sort_unstable();
        for (_, packet_id) in order {
            let Some(f) = self.inflight.get(&packet_id) else {
                continue;
            };
            // Onward delivery has started, so an unacknowledged message is
            // resent even if it has expired since [MQTT-3.3.2-5, MQTT-4.4.0-1];
            // skipping it would also hold its window slot for ever.
            let event = match f.awaiting {
                Awaiting::PubComp => Outbound::PubRel { packet_id },
                _ => Outbound::Deliver(Delivery {
                    packet_id: Some(packet_id),
                    message: f.message.clone(),
                    dup: true,
                    subscription_ids: f.subscription_ids.clone(),
                }),
            };
            self.send(event);
        }
    }

    /// PUBACK from the client: the QoS 1 delivery is done.
    pub fn puback(&mut self, packet_id: u16) -> bool {
        self.complete(packet_id, Awaiting::PubAck)
    }

    /// PUBCOMP from the client: the QoS 2 delivery is done.
    pub fn pubcomp(&mut self, packet_id: u16) -> bool {
        self.complete(packet_id, Awaiting::PubComp)
    }

    fn complete(&mut self, packet_id: u16, expected: Awaiting) -> bool {
        match self.inflight.get(&packet_id) {
            Some(f) if f.awaiting == expected => {
                self.inflight.remove(&packet_id);
                true
            }
            _ => false,
        }
    }

    /// PUBREC from the client: answer PUBREL and wait for PUBCOMP [MQTT-4.3.3-1].
    pub fn pubrec(&mut self, packet_id: u16) {
        if let Some(f) = self.inflight.get_mut(&packet_id)
            && f.awaiting != Awaiting::PubAck
        {
            f.awaiting = Awaiting::PubComp;
        }
        self.send(Outbound::PubRel { packet_id });
    }

    /// Takes back every message that came through a shared subscription and
    /// that the client has not yet received: queued, or in flight without a
    /// PUBACK/PUBREC. Oldest first. (A PUBREC'd QoS 2 message has arrived and
    /// stays to finish its PUBREL/PUBCOMP exchange.)
    pub fn take_shared_unacked(&mut self) -> Vec<Unacked> {
        let mut ids: Vec<(u64, u16)> = self
            .inflight
            .iter()
            .filter(|(_, f)| f.shared.is_some() && f.awaiting != Awaiting::PubComp)
            .map(|(id, f)| (f.seq, *id))
            .collect();
        ids.sort_unstable();
        let mut out = Vec::new();
        for (_, id) in ids {
            if let Some(Inflight {
                message,
                shared: Some(origin),
                ..
            }) = self.inflight.remove(&id)
            {
                out.push(Unacked { message, origin });
            }
        }
        let queue = std::mem::take(&mut self.queue);
        for q in queue {
            match q.shared {
                Some(origin) => out.push(Unacked {
                    message: q.message,
                    origin,
                }),
                None => self.queue.push_back(q),
            }
        }
        out
    }

    /// Drops all delivery state (clean start, or the session ended).
    pub fn clear_delivery_state(&mut self) {
        self.inflight.clear();
        self.queue.clear();
        self.incoming_qos2.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const LIMITS: SessionLimits = SessionLimits {
        max_queued: 3,
        max_queued_bytes: 0,
        max_inflight: 2,
    };

    fn online() -> (Session, crate::broker::api::OutboxReceiver) {
        let (outbox, rx) = Outbox::channel();
        let mut s = Session::new("c".into(), ClientKind::Mqtt3);
        s.link = Some(Link {
            conn: ConnId(1),
            outbox,
        });
        (s, rx)
    }

    fn msg(qos: QoS, n: u8) -> Message {
        Message::new("t", Bytes::from(vec![n]), qos, false)
    }

    fn delivered(rx: &mut crate::broker::api::OutboxReceiver) -> Vec<(Option<u16>, u8, bool)> {
        let mut out = Vec::new();
        while let Ok((_, ev)) = rx.try_recv() {
            if let Outbound::Deliver(d) = ev {
                out.push((d.packet_id, d.message.payload[0], d.dup));
            }
        }
        out
    }

    #[test]
    fn queued_bytes_beyond_max_queued_bytes_are_dropped_and_counted() {
        // Offline: everything queues. Each message is 1 topic + 1 payload byte.
        let mut s = Session::new("c".into(), ClientKind::Mqtt3);
        let limits = SessionLimits {
            max_queued: 100,
            max_queued_bytes: 5,
            max_inflight: 2,
        };
        let mut st = DeliveryStats::default();
        let now = Instant::now();
        for n in 0..4 {
            s.offer(msg(QoS::AtLeastOnce, n), vec![], now, &limits, &mut st);
        }
        assert_eq!(s.queued_len(), 2);
        assert_eq!((st.dropped, st.dropped_queued_bytes), (2, 2));
    }

    #[test]
    fn qos1_beyond_window_waits_in_queue_until_acked() {
        let (mut s, mut rx) = online();
        let mut st = DeliveryStats::default();
        let now = Instant::now();
        for n in 0..3 {
            s.offer(msg(QoS::AtLeastOnce, n), vec![], now, &LIMITS, &mut st);
        }
        assert_eq!(
            delivered(&mut rx),
            vec![(Some(1), 0, false), (Some(2), 1, false)]
        );
        assert_eq!(s.queued_len(), 1);
        assert!(s.puback(1));
        s.pump(now, &LIMITS, &mut st);
        assert_eq!(delivered(&mut rx), vec![(Some(3), 2, false)]);
    }

    #[test]
    fn queue_full_drops_and_counts() {
        let (mut s, _rx) = online();
        let mut st = DeliveryStats::default();
        let now = Instant::now();
        for n in 0..6 {
            s.offer(msg(QoS::AtLeastOnce, n), vec![], now, &LIMITS, &mut st);
        }
        assert_eq!(st.dropped, 1);
        assert_eq!(s.queued_len(), 3);
    }

    #[test]
    fn offline_session_queues_qos1_but_not_qos0() {
        let mut s = Session::new("c".into(), ClientKind::Mqtt3);
        let mut st = DeliveryStats::default();
        let now = Instant::now();
        s.offer(msg(QoS::AtMostOnce, 0), vec![], now, &LIMITS, &mut st);
        s.offer(msg(QoS::AtLeastOnce, 1), vec![], now, &LIMITS, &mut st);
        assert_eq!(s.queued_len(), 1);
    }

    #[test]
    fn unacked_deliveries_are_resent_with_dup_in_order() {
        let (mut s, mut rx) = online();
        let mut st = DeliveryStats::default();
        let now = Instant::now();
        s.offer(msg(QoS::AtLeastOnce, 7), vec![], now, &LIMITS, &mut st);
        s.offer(msg(QoS::ExactlyOnce, 8), vec![], now, &LIMITS, &mut st);
        delivered(&mut rx);
        s.resend_inflight();
        assert_eq!(
            delivered(&mut rx),
            vec![(Some(1), 7, true), (Some(2), 8, true)]
        );
    }

    #[test]
    fn pubrec_moves_qos2_to_pubrel_which_is_resent_on_reconnect() {
        let (mut s, mut rx) = online();
        let mut st = DeliveryStats::default();
        let now = Instant::now();
        s.offer(msg(QoS::ExactlyOnce, 1), vec![], now, &LIMITS, &mut st);
        delivered(&mut rx);
        s.pubrec(1);
        assert!(matches!(
            rx.try_recv(),
            Ok((_, Outbound::PubRel { packet_id: 1 }))
        ));
        assert!(!s.puback(1), "a PUBACK does not complete a QoS 2 delivery");
        s.resend_inflight();
        assert!(matches!(
            rx.try_recv(),
            Ok((_, Outbound::PubRel { packet_id: 1 }))
        ));
        assert!(s.pubcomp(1));
        assert_eq!(s.inflight_len(), 0);
    }

    #[test]
    fn slow_consumer_qos0_is_dropped_past_queue_limit() {
        let (mut s, _rx) = online();
        let mut st = DeliveryStats::default();
        let now = Instant::now();
        for n in 0..5 {
            s.offer(msg(QoS::AtMostOnce, n), vec![], now, &LIMITS, &mut st);
        }
        assert_eq!(st.sent, 3);
        assert_eq!(st.dropped, 2);
    }
}
