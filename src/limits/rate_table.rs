//! Per-source token buckets with bounded memory, for datagrams from many
//! addresses (a UDP flood must not grow the table without limit).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use super::TokenBucket;

/// Token buckets keyed by source IP address (ports are ignored, so a flood
/// from many ports of one host shares one bucket).
#[derive(Debug)]
pub struct RateTable {
    rate: u32,
    burst: u32,
    max_sources: usize,
    buckets: HashMap<IpAddr, TokenBucket>,
}

impl RateTable {
    /// `rate` datagrams per second per source with bursts of `burst`,
    /// tracking at most `max_sources` sources at once.
    pub fn new(rate: u32, burst: u32, max_sources: usize) -> RateTable {
        RateTable {
            rate,
            burst,
            max_sources: max_sources.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Whether a datagram from `source` at `now` is within its rate.
    pub fn admit(&mut self, now: Instant, source: IpAddr) -> bool {
        if !self.buckets.contains_key(&source) && self.buckets.len() >= self.max_sources {
            // Sources whose bucket is full again carry no information.
            self.buckets.retain(|_, b| !b.is_full(now));
            if self.buckets.len() >= self.max_sources {
                // Still full: every source is busy. Forgetting them all gives
                // each a fresh burst once, which is bounded and rare.
                self.buckets.clear();
            }
        }
        let (rate, burst) = (self.rate, self.burst);
        self.buckets
            .entry(source)
            .or_insert_with(|| TokenBucket::new(rate, burst, now))
            .try_take(now)
    }

    /// Sources tracked now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_source_has_its_own_budget() {
        let t0 = Instant::now();
        let mut t = RateTable::new(5, 2, 100);
        assert!(t.admit(t0, ip("10.0.0.1")));
        assert!(t.admit(t0, ip("10.0.0.1")));
        assert!(!t.admit(t0, ip("10.0.0.1")));
        assert!(t.admit(t0, ip("10.0.0.2")));
        assert!(t.admit(t0 + Duration::from_millis(200), ip("10.0.0.1")));
    }

    #[test]
    fn the_table_never_holds_more_than_max_sources() {
        let t0 = Instant::now();
        let mut t = RateTable::new(1, 1, 8);
        for i in 0..100u8 {
            t.admit(t0, IpAddr::from([10, 0, 0, i]));
            assert!(t.len() <= 8);
        }
    }
}
