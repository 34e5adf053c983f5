//! Deliveries waiting for a client: while it sleeps (MQTT-SN 1.2 §6.14), or
//! behind a gateway REGISTER that has not been acknowledged yet (§6.10).

use std::collections::VecDeque;

use crate::broker::Delivery;
use crate::qos::QoS;

/// The buffer refused a QoS 0 delivery because it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sleep buffer full")]
pub struct BufferFull;

/// A bounded FIFO of deliveries for one client.
///
/// QoS 0 deliveries beyond the bound are dropped and counted. QoS 1/2
/// deliveries are always kept: the broker core already bounds them through
/// the Receive Maximum the gateway asked for (= the same bound), and dropping
/// one would break its delivery guarantee.
#[derive(Debug)]
pub struct SleepBuffer {
    items: VecDeque<Delivery>,
    capacity: usize,
    dropped: u64,
}

impl SleepBuffer {
    /// An empty buffer holding up to `capacity` QoS 0 deliveries.
    pub fn new(capacity: usize) -> SleepBuffer {
        SleepBuffer {
            items: VecDeque::new(),
            capacity,
            dropped: 0,
        }
    }

    /// Appends a delivery, or drops it (QoS 0 only) when the buffer is full.
    pub fn push(&mut self, d: Delivery) -> Result<(), BufferFull> {
        if self.items.len() >= self.capacity && d.message.qos == QoS::AtMostOnce {
            self.dropped += 1;
            return Err(BufferFull);
        }
        self.items.push_back(d);
        Ok(())
    }

    /// The oldest delivery.
    pub fn front(&self) -> Option<&Delivery> {
        self.items.front()
    }

    /// Takes the oldest delivery.
    pub fn pop(&mut self) -> Option<Delivery> {
        self.items.pop_front()
    }

    /// Removes and returns every delivery on `topic`.
    pub fn take_topic(&mut self, topic: &str) -> Vec<Delivery> {
        let (taken, kept): (Vec<_>, Vec<_>) = self
            .items
            .drain(..)
            .partition(|d| &*d.message.topic == topic);
        self.items = kept.into();
        taken
    }

    /// Removes every delivery.
    pub fn clear(&mut self) -> Vec<Delivery> {
        self.items.drain(..).collect()
    }

    /// Deliveries waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// QoS 0 deliveries dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Message;
    use bytes::Bytes;

    fn d(qos: QoS) -> Delivery {
        Delivery {
            packet_id: (qos != QoS::AtMostOnce).then_some(1),
            message: Message::new("t", Bytes::new(), qos, false),
            dup: false,
            subscription_ids: vec![],
        }
    }

    #[test]
    fn qos0_beyond_capacity_is_dropped_and_counted() {
        let mut b = SleepBuffer::new(1);
        b.push(d(QoS::AtMostOnce)).unwrap();
        assert_eq!(b.push(d(QoS::AtMostOnce)), Err(BufferFull));
        assert_eq!(b.dropped(), 1);
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn qos1_beyond_capacity_is_kept() {
        let mut b = SleepBuffer::new(1);
        b.push(d(QoS::AtMostOnce)).unwrap();
        b.push(d(QoS::AtLeastOnce)).unwrap();
        assert_eq!(b.len(), 2);
    }
}
