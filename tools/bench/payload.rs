//! The payload header every scenario stamps: source, sequence number, send time.

use std::sync::OnceLock;
use std::time::Instant;

/// Bytes of the header at the start of each payload.
pub const HEADER_LEN: usize = 20;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the tool started (monotonic, shared by all tasks).
pub fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Encodes source id, sequence number and send time.
pub fn header(source: u32, seq: u64, sent_ns: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(&source.to_be_bytes());
    h[4..12].copy_from_slice(&seq.to_be_bytes());
    h[12..20].copy_from_slice(&sent_ns.to_be_bytes());
    h
}

/// Decodes a payload header: (source, seq, sent_ns); None for a short payload.
pub fn parse(payload: &[u8]) -> Option<(u32, u64, u64)> {
    let h: &[u8; HEADER_LEN] = payload.get(..HEADER_LEN)?.try_into().ok()?;
    let source = u32::from_be_bytes(h[..4].try_into().ok()?);
    let seq = u64::from_be_bytes(h[4..12].try_into().ok()?);
    let sent = u64::from_be_bytes(h[12..20].try_into().ok()?);
    Some((source, seq, sent))
}
