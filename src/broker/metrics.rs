//! Counters shared between the core task and connection tasks. Connections
//! count bytes on their own thread; the core reads them for `$SYS`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Process-wide traffic counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Bytes read from all client connections and sensors.
    pub bytes_received: AtomicU64,
    /// Bytes written to all client connections and sensors.
    pub bytes_sent: AtomicU64,
    /// Connections refused or dropped for a protocol error, a limit or a timeout.
    pub connections_refused: AtomicU64,
    /// Hits of each configured limit, for `$SYS/broker/limits/...`.
    pub limits: crate::limits::LimitCounters,
}

impl Metrics {
    /// Adds to the received-bytes counter.
    pub fn add_received(&self, n: usize) {
        self.bytes_received.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Adds to the sent-bytes counter.
    pub fn add_sent(&self, n: usize) {
        self.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
