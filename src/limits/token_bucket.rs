//! A token bucket that may go into debt: the caller takes a token per event
//! and, when the bucket is in debt, waits for [`TokenBucket::ready_at`]
//! instead of dropping the event (slowing a client rather than losing its data).

use std::time::{Duration, Instant};

/// `rate` tokens per second, at most `burst` saved up. Sans-IO: time is passed in.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket refilled at `rate` per second holding up to `burst` (at least 1).
    pub fn new(rate: u32, burst: u32, now: Instant) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate: f64::from(rate.max(1)),
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    /// Takes one token if there is one; `false` leaves the bucket as it was.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Takes one token even if that puts the bucket in debt.
    pub fn take(&mut self, now: Instant) {
        self.refill(now);
        self.tokens -= 1.0;
    }

    /// When the debt is paid off (`None`: not in debt).
    pub fn ready_at(&self) -> Option<Instant> {
        (self.tokens < 0.0).then(|| self.last + Duration::from_secs_f64(-self.tokens / self.rate))
    }

    /// Whether the bucket has refilled completely by `now`.
    pub fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.rate >= self.burst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_events_wait_for_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 3, t0);
        for _ in 0..3 {
            b.take(t0);
            assert_eq!(b.ready_at(), None);
        }
        b.take(t0);
        let ready = b.ready_at().expect("in debt");
        assert_eq!(ready.duration_since(t0), Duration::from_millis(100));
    }

    #[test]
    fn try_take_refuses_without_a_token_and_refills_with_time() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2, 1, t0);
        assert!(b.try_take(t0));
        assert!(!b.try_take(t0));
        assert!(!b.try_take(t0 + Duration::from_millis(400)));
        assert!(b.try_take(t0 + Duration::from_millis(500)));
    }

    #[test]
    fn the_bucket_is_full_again_after_burst_over_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 5, t0);
        for _ in 0..5 {
            b.take(t0);
        }
        assert!(!b.is_full(t0 + Duration::from_millis(400)));
        assert!(b.is_full(t0 + Duration::from_millis(500)));
    }
}
