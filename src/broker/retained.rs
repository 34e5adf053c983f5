//! Retained messages (MQTT 3.1.1 §3.3.1.3): at most one per topic, replaced
//! by a newer one, removed by an empty payload.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::message::Message;
use crate::mqtt::topic;

/// The retained-message table.
#[derive(Debug, Default)]
pub struct RetainedStore {
    by_topic: HashMap<Arc<str>, Message>,
}

impl RetainedStore {
    /// An empty table.
    pub fn new() -> RetainedStore {
        RetainedStore::default()
    }

    /// Sets, replaces or (empty payload) clears the retained message of its topic
    /// [MQTT-3.3.1-5, MQTT-3.3.1-10, MQTT-3.3.1-11].
    pub fn apply(&mut self, message: &Message) {
        if message.payload.is_empty() {
            self.by_topic.remove(&message.topic);
        } else {
            self.by_topic.insert(message.topic.clone(), message.clone());
        }
    }

    /// Number of retained messages.
    pub fn len(&self) -> usize {
        self.by_topic.len()
    }

    /// True when nothing is retained.
    pub fn is_empty(&self) -> bool {
        self.by_topic.is_empty()
    }

    /// Retained messages whose topic matches `filter`, oldest-expired ones dropped.
    pub fn matching(&mut self, filter: &str, now: Instant) -> Vec<Message> {
        self.by_topic.retain(|_, m| !m.is_expired(now));
        if !topic::has_wildcards(filter) {
            return self.by_topic.get(filter).cloned().into_iter().collect();
        }
        let mut found: Vec<Message> = self
            .by_topic
            .values()
            .filter(|m| topic::matches(filter, &m.topic))
            .cloned()
            .collect();
        // A stable order makes deliveries predictable for users and tests.
        found.sort_by(|a, b| a.topic.cmp(&b.topic));
        found
    }

    /// Every retained message (for persistence and status pages).
    pub fn iter(&self) -> impl Iterator<Item = &Message> {
        self.by_topic.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qos::QoS;
    use bytes::Bytes;

    fn msg(topic: &str, payload: &'static [u8]) -> Message {
        Message::new(topic, Bytes::from_static(payload), QoS::AtMostOnce, true)
    }

    #[test]
    fn newer_retained_message_replaces_older() {
        let mut r = RetainedStore::new();
        r.apply(&msg("a", b"1"));
        r.apply(&msg("a", b"2"));
        let now = Instant::now();
        assert_eq!(r.matching("a", now)[0].payload, Bytes::from_static(b"2"));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn empty_payload_clears_retained_message() {
        let mut r = RetainedStore::new();
        r.apply(&msg("a", b"1"));
        r.apply(&msg("a", b""));
        assert!(r.is_empty());
    }

    #[test]
    fn wildcard_filter_finds_retained_messages_in_topic_order() {
        let mut r = RetainedStore::new();
        r.apply(&msg("s/2", b"x"));
        r.apply(&msg("s/1", b"x"));
        r.apply(&msg("t/1", b"x"));
        let topics: Vec<_> = r
            .matching("s/+", Instant::now())
            .into_iter()
            .map(|m| m.topic.to_string())
            .collect();
        assert_eq!(topics, vec!["s/1", "s/2"]);
    }

    #[test]
    fn expired_retained_message_is_not_delivered() {
        let mut r = RetainedStore::new();
        let now = Instant::now();
        let mut m = msg("a", b"1");
        m.expires_at = Some(now);
        r.apply(&m);
        assert!(r.matching("a", now).is_empty());
    }
}
