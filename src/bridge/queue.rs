//! Messages on their way out: taken from the local broker core, not yet
//! acknowledged by the remote broker.
//!
//! This queue is small on purpose. The store-and-forward queue of QoS 1/2
//! messages is the bridge's persistent session in the broker core: the core
//! hands the bridge at most `max_inflight` of them at a time and keeps the
//! rest (in the durable store when persistence is on). Each one handed over
//! carries the [`LocalAck`] that the bridge answers the core with only once
//! the remote has acknowledged it, so an unanswered message is redelivered by
//! the core after a restart. QoS 0 messages are never queued by the core; the
//! bridge holds up to `max_queued_qos0` of them here, dropping the oldest.

use std::collections::{BTreeMap, VecDeque};

use crate::broker::Message;
use crate::qos::QoS;

/// Position of a message in the queue; increases with every push.
pub type Seq = u64;

/// How to acknowledge a delivery to the core (PUBACK for QoS 1, PUBREC for
/// QoS 2) once the remote broker has the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalAck {
    /// Packet id of the core's delivery.
    pub packet_id: u16,
    /// QoS of the core's delivery.
    pub qos: QoS,
}

/// Bounds of the QoS 0 messages held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Most QoS 0 messages waiting; the oldest goes first.
    pub max_qos0: usize,
    /// Most topic + payload bytes of QoS 0 messages waiting.
    pub max_qos0_bytes: usize,
}

#[derive(Debug)]
struct Waiting {
    seq: Seq,
    message: Message,
    ack: Option<LocalAck>,
}

/// Outgoing messages of one bridge, in the order the core delivered them.
#[derive(Debug)]
pub struct OutQueue {
    limits: QueueLimits,
    waiting: VecDeque<Waiting>,
    handed_out: BTreeMap<Seq, Option<LocalAck>>,
    next_seq: Seq,
    qos0: usize,
    qos0_bytes: usize,
}

fn size_of(message: &Message) -> usize {
    message.payload.len() + message.topic.len()
}

impl OutQueue {
    /// An empty queue with these limits.
    pub fn new(limits: QueueLimits) -> OutQueue {
        OutQueue {
            limits,
            waiting: VecDeque::new(),
            handed_out: BTreeMap::new(),
            next_seq: 0,
            qos0: 0,
            qos0_bytes: 0,
        }
    }

    fn drop_oldest_qos0(&mut self) -> bool {
        let Some(i) = self
            .waiting
            .iter()
            .position(|w| w.message.qos == QoS::AtMostOnce)
        else {
            return false;
        };
        if let Some(w) = self.waiting.remove(i) {
            self.qos0 -= 1;
            self.qos0_bytes -= size_of(&w.message);
        }
        true
    }

    fn qos0_full_for(&self, size: usize) -> bool {
        self.qos0 >= self.limits.max_qos0
            || self.qos0_bytes.saturating_add(size) > self.limits.max_qos0_bytes
    }

    /// Adds a message at the back; returns how many QoS 0 messages were
    /// dropped to respect the bounds (the oldest first, or this one if it
    /// cannot fit at all). QoS 1/2 messages are always taken: the core's
    /// in-flight window already bounds them.
    pub fn push(&mut self, message: Message, ack: Option<LocalAck>) -> usize {
        let mut dropped = 0;
        if message.qos == QoS::AtMostOnce {
            let size = size_of(&message);
            while self.qos0_full_for(size) {
                if !self.drop_oldest_qos0() {
                    // Nothing older to give up: the newest QoS 0 message is the one to lose.
                    return dropped + 1;
                }
                dropped += 1;
            }
            self.qos0 += 1;
            self.qos0_bytes += size;
        }
        self.waiting.push_back(Waiting {
            seq: self.next_seq,
            message,
            ack,
        });
        self.next_seq += 1;
        dropped
    }

    /// Takes the oldest message not yet handed out; it stays held until acked.
    pub fn take_next(&mut self) -> Option<(Seq, Message)> {
        let w = self.waiting.pop_front()?;
        if w.message.qos == QoS::AtMostOnce {
            self.qos0 -= 1;
            self.qos0_bytes -= size_of(&w.message);
        }
        self.handed_out.insert(w.seq, w.ack);
        Some((w.seq, w.message))
    }

    /// The remote has the message (or it was QoS 0 and written): forget it
    /// and return how to acknowledge it to the core.
    pub fn ack(&mut self, seq: Seq) -> Option<LocalAck> {
        self.handed_out.remove(&seq).flatten()
    }

    /// Messages held, waiting or sent and unacknowledged.
    pub fn len(&self) -> usize {
        self.waiting.len() + self.handed_out.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// QoS 0 messages waiting.
    pub fn qos0_waiting(&self) -> usize {
        self.qos0
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn msg(n: u32, qos: QoS) -> Message {
        Message::new("t", Bytes::from(n.to_string()), qos, false)
    }

    fn ack(packet_id: u16) -> Option<LocalAck> {
        Some(LocalAck {
            packet_id,
            qos: QoS::AtLeastOnce,
        })
    }

    fn queue(max_qos0: usize) -> OutQueue {
        OutQueue::new(QueueLimits {
            max_qos0,
            max_qos0_bytes: 1 << 20,
        })
    }

    fn drain(q: &mut OutQueue) -> Vec<String> {
        let mut out = Vec::new();
        while let Some((seq, m)) = q.take_next() {
            q.ack(seq);
            out.push(String::from_utf8(m.payload.to_vec()).unwrap());
        }
        out
    }

    #[test]
    fn messages_come_out_in_order() {
        let mut q = queue(10);
        for n in 0..5 {
            q.push(msg(n, QoS::AtLeastOnce), ack(n as u16 + 1));
        }
        assert_eq!(drain(&mut q), ["0", "1", "2", "3", "4"]);
        assert!(q.is_empty());
    }

    #[test]
    fn the_local_ack_comes_back_when_the_remote_acknowledges() {
        let mut q = queue(10);
        q.push(msg(0, QoS::AtLeastOnce), ack(7));
        let (seq, _) = q.take_next().unwrap();
        assert_eq!(q.len(), 1, "held until the remote acknowledges");
        assert_eq!(q.ack(seq), ack(7));
        assert_eq!(q.ack(seq), None, "only once");
        assert!(q.is_empty());
    }

    #[test]
    fn qos0_beyond_its_bound_drops_the_oldest_qos0() {
        let mut q = queue(2);
        q.push(msg(0, QoS::AtMostOnce), None);
        q.push(msg(1, QoS::AtLeastOnce), ack(1));
        q.push(msg(2, QoS::AtMostOnce), None);
        assert_eq!(q.push(msg(3, QoS::AtMostOnce), None), 1);
        assert_eq!(drain(&mut q), ["1", "2", "3"]);
    }

    #[test]
    fn qos1_is_never_dropped_for_the_qos0_bound() {
        let mut q = queue(0);
        assert_eq!(q.push(msg(0, QoS::AtLeastOnce), ack(1)), 0);
        assert_eq!(q.push(msg(1, QoS::AtMostOnce), None), 1);
        assert_eq!(drain(&mut q), ["0"]);
    }

    #[test]
    fn qos0_byte_bound_drops_the_oldest_qos0() {
        let mut q = OutQueue::new(QueueLimits {
            max_qos0: 100,
            max_qos0_bytes: 5,
        });
        assert_eq!(q.push(msg(10, QoS::AtMostOnce), None), 0);
        assert_eq!(q.push(msg(11, QoS::AtMostOnce), None), 1);
        assert_eq!(q.qos0_waiting(), 1);
        assert_eq!(drain(&mut q), ["11"]);
    }

    #[test]
    fn qos0_handed_out_no_longer_counts_against_the_bound() {
        let mut q = queue(1);
        q.push(msg(0, QoS::AtMostOnce), None);
        q.take_next().unwrap();
        assert_eq!(q.push(msg(1, QoS::AtMostOnce), None), 0);
    }
}
