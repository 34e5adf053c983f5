//! The limits, configuration error and counters of a DTLS server.

use std::time::Duration;

/// Limits of one DTLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtlsServerSettings {
    /// Handshakes past the cookie exchange in progress at once.
    pub max_handshakes: usize,
    /// Peers answered with a cookie and not yet back, remembered at once.
    pub max_unverified: usize,
    /// Established sessions at once; the longest idle one makes room.
    pub max_sessions: usize,
    /// An established session silent this long is forgotten (the sensor
    /// handshakes again when it wakes up).
    pub idle_timeout: Duration,
}

impl DtlsServerSettings {
    /// Defaults derived from `max_handshakes`.
    pub fn new(max_handshakes: usize) -> DtlsServerSettings {
        DtlsServerSettings {
            max_handshakes: max_handshakes.max(1),
            max_unverified: max_handshakes.saturating_mul(16).clamp(256, 65_536),
            max_sessions: 10_000,
            idle_timeout: Duration::from_secs(24 * 3600),
        }
    }
}

/// Why a DTLS server could not be built.
#[derive(Debug, thiserror::Error)]
#[error("DTLS configuration rejected: {0}")]
pub struct DtlsConfigError(pub(super) String);

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DtlsStats {
    /// Handshakes completed.
    pub handshakes: u64,
    /// Handshakes that failed (wrong key, unknown identity, timeout, protocol error).
    pub failed: u64,
    /// Cookie-bearing ClientHellos refused because `max_handshakes` were in progress.
    pub refused: u64,
    /// Unverified peers evicted to make room for newer ones.
    pub evicted: u64,
    /// Datagrams from addresses without a session that were not a ClientHello.
    pub dropped: u64,
}
