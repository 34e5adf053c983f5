//! Resource limits that are not protocol state: token buckets for publish
//! and datagram rates, source-network allowlists, and the counters of every
//! limit hit that `$SYS/broker/limits/...` publishes.

mod cidr;
mod rate_table;
mod throttle;
mod token_bucket;

use std::sync::atomic::{AtomicU64, Ordering};

pub use cidr::{Cidr, CidrError};
pub use rate_table::RateTable;
pub use throttle::PublishThrottle;
pub use token_bucket::TokenBucket;

/// A limit whose hits are counted (one `$SYS/broker/limits/<name>` topic each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A connection refused because `max_connections` was reached.
    MaxConnections,
    /// A connection closed for not sending CONNECT within `connect_timeout`.
    ConnectTimeout,
    /// A connection closed for a packet above `max_packet_size`.
    MaxPacketSize,
    /// A subscription refused because of `max_subscriptions`.
    MaxSubscriptions,
    /// A delivery dropped because of `max_queued_bytes`.
    MaxQueuedBytes,
    /// A connection whose reads were slowed by `max_publish_rate` (one per episode).
    PublishRate,
    /// A datagram dropped by `[gateway] max_datagram_rate`.
    DatagramRate,
    /// A sensor refused by a `[[gateway.udp]]` allowlist (network or client id).
    SensorRefused,
}

impl Limit {
    /// Every limit, in `$SYS` order.
    pub const ALL: [Limit; 8] = [
        Limit::MaxConnections,
        Limit::ConnectTimeout,
        Limit::MaxPacketSize,
        Limit::MaxSubscriptions,
        Limit::MaxQueuedBytes,
        Limit::PublishRate,
        Limit::DatagramRate,
        Limit::SensorRefused,
    ];

    /// The `$SYS/broker/limits/<name>` topic level.
    pub fn name(self) -> &'static str {
        match self {
            Limit::MaxConnections => "max_connections",
            Limit::ConnectTimeout => "connect_timeout",
            Limit::MaxPacketSize => "max_packet_size",
            Limit::MaxSubscriptions => "max_subscriptions",
            Limit::MaxQueuedBytes => "max_queued_bytes",
            Limit::PublishRate => "max_publish_rate",
            Limit::DatagramRate => "max_datagram_rate",
            Limit::SensorRefused => "sensors_refused",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Process-wide counts of limit hits, updated from any task.
#[derive(Debug, Default)]
pub struct LimitCounters {
    counts: [AtomicU64; Limit::ALL.len()],
}

impl LimitCounters {
    /// Counts one hit of `limit`.
    pub fn hit(&self, limit: Limit) {
        self.add(limit, 1);
    }

    /// Counts `n` hits of `limit`.
    pub fn add(&self, limit: Limit, n: u64) {
        if let Some(c) = self.counts.get(limit.index()) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Hits of `limit` so far.
    pub fn get(&self, limit: Limit) -> u64 {
        self.counts
            .get(limit.index())
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Every limit with its count, in `$SYS` order.
    pub fn snapshot(&self) -> [(Limit, u64); Limit::ALL.len()] {
        Limit::ALL.map(|l| (l, self.get(l)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_are_counted_per_limit() {
        let c = LimitCounters::default();
        c.hit(Limit::DatagramRate);
        c.add(Limit::DatagramRate, 2);
        c.hit(Limit::ConnectTimeout);
        assert_eq!(c.get(Limit::DatagramRate), 3);
        assert_eq!(c.get(Limit::ConnectTimeout), 1);
        assert_eq!(c.get(Limit::MaxConnections), 0);
    }

    #[test]
    fn every_limit_has_its_own_slot_and_name() {
        for (i, l) in Limit::ALL.iter().enumerate() {
            assert_eq!(l.index(), i);
        }
        let mut names: Vec<_> = Limit::ALL.iter().map(|l| l.name()).collect();
        names.dedup();
        assert_eq!(names.len(), Limit::ALL.len());
    }
}
