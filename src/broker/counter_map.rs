//! Hash maps keyed by process-local counters (`ConnId`, `SessionKey`).
//!
//! Those keys are handed out by sngate, never chosen by a peer, so they need
//! no DoS-resistant hasher: one multiply spreads a counter over the table
//! and the map carries no per-table random state. Maps keyed by anything a
//! peer controls (client ids, topics) keep the std `RandomState`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A hash map keyed by a process-local counter.
pub(crate) type CounterMap<K, V> = HashMap<K, V, BuildHasherDefault<CounterHasher>>;

/// Fibonacci hashing of a counter: consecutive values land in distinct
/// buckets, and the high bits (used by the table's control bytes) vary too.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CounterHasher(u64);

/// 2^64 / golden ratio, odd: multiplying by it is a bijection on u64.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for CounterHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached by the counter keys (they hash one u64); kept total.
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(GOLDEN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::api::ConnId;

    #[test]
    fn consecutive_counters_spread_over_the_high_bits() {
        // The table's 7-bit control tags come from the top bits: sequential
        // ids must not all share one tag.
        let tags: std::collections::BTreeSet<u64> = (1..=128u64)
            .map(|n| {
                let mut h = CounterHasher::default();
                std::hash::Hash::hash(&ConnId(n), &mut h);
                h.finish() >> 57
            })
            .collect();
        assert!(tags.len() > 64, "only {} distinct tags", tags.len());
    }

    #[test]
    fn a_counter_map_finds_what_it_holds() {
        let mut m: CounterMap<ConnId, u32> = CounterMap::default();
        for n in 0..1000u32 {
            m.insert(ConnId(u64::from(n)), n);
        }
        assert!((0..1000u32).all(|n| m.get(&ConnId(u64::from(n))) == Some(&n)));
    }
}
