//! Draining the `dimpl` engine: everything one round of `poll_output`
//! produced, up to its next timer.

use std::time::Instant;

use bytes::Bytes;
use dimpl::{Dtls, Output};

/// What one round of `poll_output` produced.
#[derive(Default)]
pub(super) struct Drained {
    pub(super) packets: Vec<Bytes>,
    pub(super) data: Vec<Bytes>,
    pub(super) connected: bool,
    pub(super) closed: bool,
    pub(super) wake: Option<Instant>,
    /// The peer's leaf certificate (DER), when the handshake carried one.
    pub(super) peer_cert: Option<Vec<u8>>,
}

/// Polls `dtls` until it reports its next timeout.
pub(super) fn drain(dtls: &mut Dtls, buf: &mut Vec<u8>) -> Drained {
    let mut d = Drained::default();
    loop {
        match dtls.poll_output(buf) {
            Output::Packet(p) => d.packets.push(Bytes::copy_from_slice(p)),
            Output::BufferTooSmall { needed } => {
                if needed <= buf.len() || needed > 1 << 17 {
                    return d;
                }
                buf.resize(needed, 0);
            }
            Output::Timeout(t) => {
                d.wake = Some(t);
                return d;
            }
            Output::Connected => d.connected = true,
            Output::ApplicationData(data) => d.data.push(Bytes::copy_from_slice(data)),
            Output::PeerCert(der) => d.peer_cert = Some(der.to_vec()),
            Output::CloseNotify => d.closed = true,
            _ => {}
        }
    }
}
