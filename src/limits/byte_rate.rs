//! Bytes per second over one-second windows, with episodes: a limit hit is
//! reported once when the rate first goes over, not for every byte after.

use std::time::{Duration, Instant};

/// A per-second byte budget.
#[derive(Debug)]
pub struct ByteRate {
    rate: u64,
    window_start: Instant,
    count: u64,
    over: bool,
}

impl ByteRate {
    /// Allows `rate` bytes per second; 0 never reports.
    pub fn new(rate: u32, now: Instant) -> ByteRate {
        ByteRate {
            rate: u64::from(rate),
            window_start: now,
            count: 0,
            over: false,
        }
    }

    /// Adds `n` bytes; true when this starts an episode above the rate.
    pub fn add(&mut self, now: Instant, n: usize) -> bool {
        if self.rate == 0 {
            return false;
        }
        if now.saturating_duration_since(self.window_start) >= Duration::from_secs(1) {
            // A whole quiet second ends the episode.
            if self.count <= self.rate {
                self.over = false;
            }
            self.window_start = now;
            self.count = 0;
        }
        self.count = self.count.saturating_add(n as u64);
        if self.count > self.rate && !self.over {
            self.over = true;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn going_over_the_rate_is_reported_once_per_episode() {
        let t0 = Instant::now();
        let mut r = ByteRate::new(100, t0);
        assert!(!r.add(t0, 60));
        assert!(r.add(t0, 60), "120 bytes in one second is over 100");
        assert!(!r.add(t0, 500), "the same episode is not reported again");
        assert!(
            !r.add(t0 + Duration::from_secs(1), 500),
            "still over in the next second"
        );
        assert!(
            !r.add(t0 + Duration::from_secs(3), 10),
            "a calm second ends the episode"
        );
        assert!(!r.add(t0 + Duration::from_secs(4), 10));
        assert!(
            r.add(t0 + Duration::from_secs(4), 200),
            "a new episode is reported"
        );
    }

    #[test]
    fn zero_rate_never_reports() {
        let t0 = Instant::now();
        let mut r = ByteRate::new(0, t0);
        assert!(!r.add(t0, 1_000_000));
    }
}
