//! Reconnect delays: exponential from `min` to `max`, with jitter so that many
//! gateways cut off by the same outage do not all return in the same second.

use std::time::Duration;

/// Exponential backoff with "equal jitter": each delay is drawn from
/// `[d/2, d]` where `d` doubles from `min` up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// A backoff starting at `min`, never above `max`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let max = max.max(min);
        Backoff {
            min,
            max,
            current: min,
        }
    }

    /// The next delay; `unit` in `[0, 1)` picks the jitter (pass a random number).
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        let d = self.current;
        self.current = (self.current * 2).min(self.max);
        let unit = unit.clamp(0.0, 1.0);
        d / 2 + d.mul_f64(unit / 2.0)
    }

    /// Back to `min` after a link that stayed up.
    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_maximum() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let top: Vec<u64> = (0..5).map(|_| b.next_delay(1.0).as_secs()).collect();
        assert_eq!(top, [1, 2, 4, 5, 5]);
    }

    #[test]
    fn jitter_stays_within_half_and_full_delay() {
        let mut b = Backoff::new(Duration::from_secs(4), Duration::from_secs(4));
        assert_eq!(b.next_delay(0.0), Duration::from_secs(2));
        assert_eq!(b.next_delay(0.5), Duration::from_secs(3));
    }

    #[test]
    fn reset_returns_to_the_minimum() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        b.next_delay(1.0);
        b.next_delay(1.0);
        b.reset();
        assert_eq!(b.next_delay(1.0), Duration::from_secs(1));
    }
}
