//! Latency percentiles.

/// Percentiles of a latency sample, in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    /// Number of samples.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest sample.
    pub max: f64,
}

/// Nearest-rank percentiles of `samples` (nanoseconds), reported in microseconds.
pub fn percentiles(samples: &mut [u64]) -> Percentiles {
    if samples.is_empty() {
        return Percentiles::default();
    }
    samples.sort_unstable();
    let n = samples.len();
    let at = |q: f64| {
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        samples.get(rank - 1).copied().unwrap_or(0) as f64 / 1000.0
    };
    Percentiles {
        count: n,
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        max: samples.last().copied().unwrap_or(0) as f64 / 1000.0,
    }
}

/// Per-source sequence tracking: counts unique messages and duplicates.
#[derive(Debug, Clone, Default)]
pub struct SeqTracker {
    /// Highest sequence number + 1 seen per source.
    next: Vec<u64>,
    /// Messages received, duplicates included.
    pub received: u64,
    /// Messages whose sequence number was not above the highest seen (duplicates or reordering).
    pub out_of_order: u64,
}

impl SeqTracker {
    /// A tracker for `sources` sources.
    pub fn new(sources: usize) -> SeqTracker {
        SeqTracker {
            next: vec![0; sources],
            ..SeqTracker::default()
        }
    }

    /// Records message `seq` (0-based) from `source`.
    pub fn record(&mut self, source: usize, seq: u64) {
        self.received += 1;
        if let Some(n) = self.next.get_mut(source) {
            if seq < *n {
                self.out_of_order += 1;
            } else {
                *n = seq + 1;
            }
        }
    }

    /// Messages received from `source` in order (an upper bound for its unique deliveries).
    pub fn highest(&self, source: usize) -> u64 {
        self.next.get(source).copied().unwrap_or(0)
    }
}
