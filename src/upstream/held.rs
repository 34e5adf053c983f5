//! Sensor messages the gateway has acknowledged but the upstream broker has
//! not: held until the upstream completes them, so that a PUBACK a sensor saw
//! is never followed by the message being lost. [`MemoryHeld`] keeps them in
//! memory; [`super::held_redb::RedbHeld`] on disk, across restarts.

use std::collections::{BTreeMap, HashMap};

use crate::broker::Message;

/// Position of a held message, increasing in acceptance order.
pub type HeldSeq = u64;

/// A message cannot be held: the sensor must be told "congestion", never
/// acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeldError {
    /// The bound on held messages is reached.
    #[error("{held} messages already held for the upstream broker (max_queued)")]
    Full {
        /// How many messages are held.
        held: usize,
    },
    /// The durable store could not write the message.
    #[error("held-message store: {0}")]
    Store(String),
}

/// Where QoS 1/2 sensor messages wait for the upstream broker. `key` is the
/// upstream connection's client id, so a store that survives a restart can
/// hand each connection its messages back in order.
pub trait HeldStore: Send {
    /// Holds `message` for `key`; refuses when the bound is reached.
    fn push(&mut self, key: &str, message: Message) -> Result<HeldSeq, HeldError>;
    /// The upstream broker completed the message: forget it.
    fn remove(&mut self, key: &str, seq: HeldSeq);
    /// Every message held for `key`, oldest first.
    fn held(&self, key: &str) -> Vec<(HeldSeq, Message)>;
    /// Every key with messages held, in no particular order.
    fn keys(&self) -> Vec<String>;
    /// Messages held in total.
    fn len(&self) -> usize;
    /// True when nothing is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An in-memory [`HeldStore`] with a bound on the total number of messages.
#[derive(Debug)]
pub struct MemoryHeld {
    max: usize,
    next: HeldSeq,
    total: usize,
    by_key: HashMap<String, BTreeMap<HeldSeq, Message>>,
}

impl MemoryHeld {
    /// A store holding at most `max` messages.
    pub fn new(max: usize) -> MemoryHeld {
        MemoryHeld {
            max,
            next: 1,
            total: 0,
            by_key: HashMap::new(),
        }
    }
}

impl HeldStore for MemoryHeld {
    fn push(&mut self, key: &str, message: Message) -> Result<HeldSeq, HeldError> {
        let seq = self.next;
        self.insert(key, seq, message)?;
        Ok(seq)
    }

    fn remove(&mut self, key: &str, seq: HeldSeq) {
        let Some(q) = self.by_key.get_mut(key) else {
            return;
        };
        if q.remove(&seq).is_some() {
            self.total -= 1;
        }
        if q.is_empty() {
            self.by_key.remove(key);
        }
    }

    fn held(&self, key: &str) -> Vec<(HeldSeq, Message)> {
        self.by_key
            .get(key)
            .map(|q| q.iter().map(|(s, m)| (*s, m.clone())).collect())
            .unwrap_or_default()
    }

    fn keys(&self) -> Vec<String> {
        self.by_key.keys().cloned().collect()
    }

    fn len(&self) -> usize {
        self.total
    }
}

impl MemoryHeld {
    /// Holds `message` under a sequence number chosen elsewhere (a durable
    /// store's, or one read back after a restart); later pushes number after it.
    pub fn insert(&mut self, key: &str, seq: HeldSeq, message: Message) -> Result<(), HeldError> {
        if self.total >= self.max {
            return Err(HeldError::Full { held: self.total });
        }
        self.next = self.next.max(seq.saturating_add(1));
        self.total += 1;
        self.by_key
            .entry(key.to_owned())
            .or_default()
            .insert(seq, message);
        Ok(())
    }

    /// Holds a message read back after a restart: kept even past the bound
    /// (it was lowered), since the sensor was acknowledged.
    pub fn restore(&mut self, key: &str, seq: HeldSeq, message: Message) {
        self.next = self.next.max(seq.saturating_add(1));
        if self
            .by_key
            .entry(key.to_owned())
            .or_default()
            .insert(seq, message)
            .is_none()
        {
            self.total += 1;
        }
    }

    /// The bound on held messages.
    pub fn max(&self) -> usize {
        self.max
    }

    /// The sequence number the next push gets.
    pub fn next_seq(&self) -> HeldSeq {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::qos::QoS;

    fn msg(n: u8) -> Message {
        Message::new("t", Bytes::from(vec![n]), QoS::AtLeastOnce, false)
    }

    #[test]
    fn held_messages_come_back_in_acceptance_order() {
        let mut h = MemoryHeld::new(10);
        let a = h.push("c", msg(1)).unwrap();
        h.push("other", msg(9)).unwrap();
        let b = h.push("c", msg(2)).unwrap();
        let held: Vec<_> = h.held("c").into_iter().map(|(s, _)| s).collect();
        assert_eq!(held, [a, b]);
    }

    #[test]
    fn the_bound_refuses_new_messages_until_one_is_removed() {
        let mut h = MemoryHeld::new(2);
        let a = h.push("c", msg(1)).unwrap();
        h.push("c", msg(2)).unwrap();
        assert_eq!(h.push("c", msg(3)), Err(HeldError::Full { held: 2 }));
        h.remove("c", a);
        assert!(h.push("c", msg(3)).is_ok());
        assert_eq!(h.len(), 2);
    }
}
