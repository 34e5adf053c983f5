//! Store-and-forward queue of messages going out to the remote broker.
//!
//! A message stays in the queue from the moment the local side hands it over
//! until the remote broker has acknowledged it (QoS 1/2) or it was written
//! (QoS 0). The link takes messages with [`BridgeQueue::next`] and confirms
//! them with [`BridgeQueue::ack`]. The trait is small on purpose so that the
//! durable store can back it: a durable queue persists on `push`, deletes on
//! `ack`, and after a restart offers every unacknowledged message again.

use std::collections::{BTreeMap, VecDeque};

use crate::broker::Message;
use crate::qos::QoS;

/// Position of a message in the queue; increases with every push.
pub type Seq = u64;

/// What `push` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Queued; `dropped_qos0` older QoS 0 messages were dropped to make room.
    Queued {
        /// QoS 0 messages dropped (oldest first).
        dropped_qos0: usize,
    },
    /// The queue is full of QoS 1/2 messages: the new message was dropped.
    Rejected,
}

/// Limits of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Most messages held (waiting plus unacknowledged).
    pub max_messages: usize,
    /// Most payload + topic bytes held.
    pub max_bytes: usize,
    /// Most QoS 0 messages waiting; the oldest goes first.
    pub max_qos0: usize,
}

/// Outgoing messages of one bridge.
pub trait BridgeQueue: Send {
    /// Adds a message at the back.
    fn push(&mut self, message: Message) -> PushOutcome;
    /// Takes the oldest message not yet handed out; it stays counted until acked.
    fn next(&mut self) -> Option<(Seq, Message)>;
    /// The remote broker has the message (or it was QoS 0 and written): forget it.
    fn ack(&mut self, seq: Seq);
    /// Messages held, waiting or unacknowledged.
    fn len(&self) -> usize;
    /// True when nothing is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Messages waiting to be handed out.
    fn waiting(&self) -> usize;
}

fn size_of(message: &Message) -> usize {
    message.payload.len() + message.topic.len()
}

/// The in-memory queue: lost when sngate stops.
#[derive(Debug)]
pub struct MemoryQueue {
    limits: QueueLimits,
    waiting: VecDeque<(Seq, Message)>,
    handed_out: BTreeMap<Seq, usize>,
    next_seq: Seq,
    bytes: usize,
    waiting_qos0: usize,
}

impl MemoryQueue {
    /// An empty queue with these limits.
    pub fn new(limits: QueueLimits) -> MemoryQueue {
        MemoryQueue {
            limits,
            waiting: VecDeque::new(),
            handed_out: BTreeMap::new(),
            next_seq: 0,
            bytes: 0,
            waiting_qos0: 0,
        }
    }

    /// Payload and topic bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn drop_oldest_qos0(&mut self) -> bool {
        let Some(i) = self
            .waiting
            .iter()
            .position(|(_, m)| m.qos == QoS::AtMostOnce)
        else {
            return false;
        };
        if let Some((_, m)) = self.waiting.remove(i) {
            self.bytes -= size_of(&m);
            self.waiting_qos0 -= 1;
        }
        true
    }

    fn is_full_for(&self, size: usize) -> bool {
        self.len() >= self.limits.max_messages || self.bytes + size > self.limits.max_bytes
    }
}

impl BridgeQueue for MemoryQueue {
    fn push(&mut self, message: Message) -> PushOutcome {
        let size = size_of(&message);
        let mut dropped_qos0 = 0;
        if message.qos == QoS::AtMostOnce {
            if self.limits.max_qos0 == 0 {
                return PushOutcome::Queued { dropped_qos0: 1 };
            }
            while self.waiting_qos0 >= self.limits.max_qos0 && self.drop_oldest_qos0() {
                dropped_qos0 += 1;
            }
        }
        while self.is_full_for(size) {
            if !self.drop_oldest_qos0() {
                if message.qos == QoS::AtMostOnce {
                    // The newest QoS 0 message is the one to lose.
                    return PushOutcome::Queued {
                        dropped_qos0: dropped_qos0 + 1,
                    };
                }
                return PushOutcome::Rejected;
            }
            dropped_qos0 += 1;
        }
        if message.qos == QoS::AtMostOnce {
            self.waiting_qos0 += 1;
        }
        self.bytes += size;
        self.waiting.push_back((self.next_seq, message));
        self.next_seq += 1;
        PushOutcome::Queued { dropped_qos0 }
    }

    fn next(&mut self) -> Option<(Seq, Message)> {
        let (seq, message) = self.waiting.pop_front()?;
        if message.qos == QoS::AtMostOnce {
            self.waiting_qos0 -= 1;
        }
        self.handed_out.insert(seq, size_of(&message));
        Some((seq, message))
    }

    fn ack(&mut self, seq: Seq) {
        if let Some(size) = self.handed_out.remove(&seq) {
            self.bytes -= size;
        }
    }

    fn len(&self) -> usize {
        self.waiting.len() + self.handed_out.len()
    }

    fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn msg(n: u32, qos: QoS) -> Message {
        Message::new("t", Bytes::from(n.to_string()), qos, false)
    }

    fn limits(max_messages: usize, max_qos0: usize) -> QueueLimits {
        QueueLimits {
            max_messages,
            max_bytes: 1 << 20,
            max_qos0,
        }
    }

    fn drain(q: &mut MemoryQueue) -> Vec<String> {
        let mut out = Vec::new();
        while let Some((seq, m)) = q.next() {
            q.ack(seq);
            out.push(String::from_utf8(m.payload.to_vec()).unwrap());
        }
        out
    }

    #[test]
    fn messages_come_out_in_order() {
        let mut q = MemoryQueue::new(limits(10, 10));
        for n in 0..5 {
            q.push(msg(n, QoS::AtLeastOnce));
        }
        assert_eq!(drain(&mut q), ["0", "1", "2", "3", "4"]);
        assert!(q.is_empty());
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn qos0_beyond_its_bound_drops_the_oldest_qos0() {
        let mut q = MemoryQueue::new(limits(10, 2));
        q.push(msg(0, QoS::AtMostOnce));
        q.push(msg(1, QoS::AtLeastOnce));
        q.push(msg(2, QoS::AtMostOnce));
        assert_eq!(
            q.push(msg(3, QoS::AtMostOnce)),
            PushOutcome::Queued { dropped_qos0: 1 }
        );
        assert_eq!(drain(&mut q), ["1", "2", "3"]);
    }

    #[test]
    fn full_queue_makes_room_from_qos0_for_qos1() {
        let mut q = MemoryQueue::new(limits(2, 10));
        q.push(msg(0, QoS::AtMostOnce));
        q.push(msg(1, QoS::AtLeastOnce));
        assert_eq!(
            q.push(msg(2, QoS::AtLeastOnce)),
            PushOutcome::Queued { dropped_qos0: 1 }
        );
        assert_eq!(drain(&mut q), ["1", "2"]);
    }

    #[test]
    fn full_queue_of_qos1_rejects_the_newest() {
        let mut q = MemoryQueue::new(limits(2, 10));
        q.push(msg(0, QoS::AtLeastOnce));
        q.push(msg(1, QoS::ExactlyOnce));
        assert_eq!(q.push(msg(2, QoS::AtLeastOnce)), PushOutcome::Rejected);
        assert_eq!(drain(&mut q), ["0", "1"]);
    }

    #[test]
    fn unacknowledged_messages_still_count() {
        let mut q = MemoryQueue::new(limits(1, 10));
        q.push(msg(0, QoS::AtLeastOnce));
        let (seq, _) = q.next().unwrap();
        assert_eq!(q.push(msg(1, QoS::AtLeastOnce)), PushOutcome::Rejected);
        q.ack(seq);
        assert_eq!(
            q.push(msg(1, QoS::AtLeastOnce)),
            PushOutcome::Queued { dropped_qos0: 0 }
        );
    }

    #[test]
    fn byte_bound_is_kept() {
        let mut q = MemoryQueue::new(QueueLimits {
            max_messages: 100,
            max_bytes: 4,
            max_qos0: 100,
        });
        assert_eq!(
            q.push(msg(10, QoS::AtLeastOnce)),
            PushOutcome::Queued { dropped_qos0: 0 }
        );
        assert_eq!(q.push(msg(11, QoS::AtLeastOnce)), PushOutcome::Rejected);
    }
}
