//! Queue pressure: a session whose queue is full slows the publishers that
//! fill it (QoS 1 back-pressure) or refuses them, and enforces the byte bound.

use super::{Link, Message, Session, SessionLimits, overflow_cap};

/// What a session keeps only once its queue has been full.
#[derive(Debug, Default)]
pub(super) struct Pressure {
    /// QoS 1/2 messages refused because this session's own queue was full.
    pub(super) refused: u64,
    /// Publishers blocked because this queue went over its bound.
    pub(super) blocked: Vec<Link>,
}

impl Session {
    /// True when a QoS 1/2 message offered now would find the queue full
    /// (MQTT-SN publishers are refused with "congestion" rather than slowed).
    pub fn is_congested(&self, limits: &SessionLimits) -> bool {
        let limits = self.own_limits.as_deref().unwrap_or(limits);
        self.is_online() && self.queue.len() >= limits.max_queued
    }

    /// True when the queue has reached the hard bound it may overflow to
    /// while its publishers are slowed ([`overflow_cap`]): a QoS 1/2 message
    /// offered now would be dropped.
    pub fn is_at_overflow_cap(&self, limits: &SessionLimits) -> bool {
        let limits = self.own_limits.as_deref().unwrap_or(limits);
        self.is_online() && self.queue.len() >= overflow_cap(limits.max_queued)
    }

    /// Blocks `publisher` until this queue drains below half its bound,
    /// once per publisher.
    pub fn hold_publisher(&mut self, publisher: &Link) {
        let pressure = self.pressure.get_or_insert_with(Box::default);
        if !pressure.blocked.iter().any(|l| l.conn == publisher.conn) {
            publisher.outbox.block();
            pressure.blocked.push(publisher.clone());
        }
    }

    /// Unblocks every publisher this session holds (the queue drained, or
    /// the session went offline and no longer slows anyone).
    pub fn release_publishers(&mut self) {
        let Some(pressure) = self.pressure.as_mut() else {
            return;
        };
        for link in pressure.blocked.drain(..) {
            link.outbox.unblock();
        }
        // A long overflow episode may have left a large buffer behind.
        if pressure.blocked.capacity() > 64 {
            pressure.blocked = Vec::new();
        }
        // The refusal count only paces a log line; an episode that refused
        // nothing leaves no box behind.
        if pressure.refused == 0 {
            self.pressure = None;
        }
    }

    /// Whether queueing `message` would pass `max_queued_bytes`; counted and
    /// logged once per episode. Summed on demand so that sessions without
    /// the limit carry no extra state.
    pub(super) fn over_queued_bytes(&mut self, message: &Message, limits: &SessionLimits) -> bool {
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
}
