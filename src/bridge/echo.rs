//! Loop prevention for remote brokers that cannot be told to hold back the
//! bridge's own messages (MQTT 3.1.1 without Mosquitto's bridge flag): every
//! message sent out is remembered for a while, and the same topic and payload
//! coming back in within that time is taken as the echo and dropped once.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

/// Recently sent messages, by (remote topic, payload) fingerprint.
#[derive(Debug)]
pub struct EchoFilter {
    ttl: Duration,
    capacity: usize,
    counts: HashMap<u64, usize>,
    order: VecDeque<(Instant, u64)>,
}

fn fingerprint(topic: &str, payload: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    topic.hash(&mut h);
    payload.hash(&mut h);
    h.finish()
}

impl EchoFilter {
    /// Remembers at most `capacity` messages for `ttl` each.
    pub fn new(ttl: Duration, capacity: usize) -> EchoFilter {
        EchoFilter {
            ttl,
            capacity,
            counts: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn forget_oldest(&mut self) {
        if let Some((_, f)) = self.order.pop_front()
            && let Some(n) = self.counts.get_mut(&f)
        {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&f);
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        while self
            .order
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > self.ttl)
        {
            self.forget_oldest();
        }
    }

    /// A message went out to the remote on `topic`.
    pub fn sent(&mut self, topic: &str, payload: &[u8], now: Instant) {
        self.expire(now);
        if self.order.len() >= self.capacity {
            self.forget_oldest();
        }
        let f = fingerprint(topic, payload);
        *self.counts.entry(f).or_default() += 1;
        self.order.push_back((now, f));
    }

    /// A message came in on `topic`: true if it is the echo of one we sent.
    pub fn is_echo(&mut self, topic: &str, payload: &[u8], now: Instant) -> bool {
        self.expire(now);
        let f = fingerprint(topic, payload);
        let Some(n) = self.counts.get_mut(&f) else {
            return false;
        };
        *n -= 1;
        if *n == 0 {
            self.counts.remove(&f);
        }
        if let Some(i) = self.order.iter().position(|(_, x)| *x == f) {
            self.order.remove(i);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echo_is_dropped_once() {
        let now = Instant::now();
        let mut e = EchoFilter::new(Duration::from_secs(10), 100);
        e.sent("a", b"1", now);
        assert!(e.is_echo("a", b"1", now));
        assert!(!e.is_echo("a", b"1", now));
    }

    #[test]
    fn other_messages_pass() {
        let now = Instant::now();
        let mut e = EchoFilter::new(Duration::from_secs(10), 100);
        e.sent("a", b"1", now);
        assert!(!e.is_echo("a", b"2", now));
        assert!(!e.is_echo("b", b"1", now));
    }

    #[test]
    fn memory_expires() {
        let now = Instant::now();
        let mut e = EchoFilter::new(Duration::from_secs(10), 100);
        e.sent("a", b"1", now);
        assert!(!e.is_echo("a", b"1", now + Duration::from_secs(11)));
    }
}
