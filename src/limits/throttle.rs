//! The publish-rate limit of one connection: a token bucket in debt pauses
//! the connection's reads, so a fast publisher is slowed by TCP back-pressure
//! instead of losing messages or its connection.

use std::time::Instant;

use super::TokenBucket;

/// Rate state of one connection (a few machine words).
#[derive(Debug, Clone, Copy)]
pub struct PublishThrottle {
    bucket: TokenBucket,
    throttled: bool,
}

impl PublishThrottle {
    /// `rate` PUBLISH packets per second, with bursts of one second's worth.
    pub fn new(rate: u32, now: Instant) -> PublishThrottle {
        PublishThrottle {
            bucket: TokenBucket::new(rate, rate, now),
            throttled: false,
        }
    }

    /// Counts one PUBLISH; `true` when it starts a throttling episode (to log
    /// and count once). An episode ends when the bucket has refilled.
    pub fn on_publish(&mut self, now: Instant) -> bool {
        if self.throttled && self.bucket.is_full(now) {
            self.throttled = false;
        }
        self.bucket.take(now);
        let starts = self.bucket.ready_at().is_some() && !self.throttled;
        self.throttled |= starts;
        starts
    }

    /// Until when reads pause (`None`: read now).
    pub fn resume_at(&self) -> Option<Instant> {
        self.bucket.ready_at()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_episode_is_reported_once_and_ends_when_the_bucket_refills() {
        let t0 = Instant::now();
        let mut t = PublishThrottle::new(10, t0);
        let starts: Vec<bool> = (0..15).map(|_| t.on_publish(t0)).collect();
        assert_eq!(starts.iter().filter(|s| **s).count(), 1);
        assert!(starts[10]);
        assert_eq!(
            t.resume_at().unwrap().duration_since(t0),
            Duration::from_millis(500)
        );
        let later = t0 + Duration::from_secs(3);
        assert!(!t.on_publish(later));
        assert_eq!(t.resume_at(), None);
        for _ in 0..9 {
            assert!(!t.on_publish(later));
        }
        assert!(t.on_publish(later), "a new episode after a full refill");
    }
}
