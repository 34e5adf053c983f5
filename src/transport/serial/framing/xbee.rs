//! `xbee`: Digi XBee API frames (API mode 1 unescaped, mode 2 escaped).
//!
//! A frame is 0x7E, a big-endian u16 length of the frame data, the frame data
//! (API frame type first) and a checksum = 0xFF − (sum of frame data & 0xFF).
//! In API mode 2 every octet after the start delimiter that is 0x7E, 0x7D,
//! 0x11 or 0x13 is sent as 0x7D followed by the octet XOR 0x20. MQTT-SN rides
//! in the RF data of Receive Packet (0x90) and Transmit Request (0x10) frames.

use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};

use super::{
    DEFAULT_INTER_BYTE_TIMEOUT, Decoded, Destination, Framing, FramingError, InFrame,
    InterByteTimer, OutFrame, XBEE_BROADCAST,
};
use crate::config::XbeeApiMode;

/// Start delimiter.
pub const START: u8 = 0x7E;
/// Escape octet (API mode 2).
pub const ESCAPE: u8 = 0x7D;
/// XON, escaped in API mode 2.
pub const XON: u8 = 0x11;
/// XOFF, escaped in API mode 2.
pub const XOFF: u8 = 0x13;
/// Transmit Request frame type.
pub const TRANSMIT_REQUEST: u8 = 0x10;
/// Transmit Status frame type.
pub const TRANSMIT_STATUS: u8 = 0x8B;
/// Receive Packet frame type.
pub const RECEIVE_PACKET: u8 = 0x90;
/// 16-bit destination address meaning "unknown, use the 64-bit one".
const UNKNOWN_NETWORK_ADDRESS: u16 = 0xFFFE;
/// Frame data of a Receive Packet before the RF data: type, source 64, source 16, options.
const RECEIVE_HEADER: usize = 12;
/// Frame data of a Transmit Request before the RF data.
const TRANSMIT_HEADER: usize = 14;

/// Decoder and encoder for XBee API frames.
#[derive(Debug, Clone)]
pub struct XbeeFraming {
    escaped: bool,
    max_message: usize,
    timer: InterByteTimer,
    default_destination: u64,
    next_frame_id: u8,
}

/// Result of reading one frame from the start delimiter on.
enum Scan {
    /// Frame data (checksum verified separately) and the escaped octets it used.
    Complete {
        data: Vec<u8>,
        checksum: u8,
        used: usize,
    },
    /// Not all octets have arrived.
    Incomplete,
    /// This 0x7E does not start a usable frame; skip it.
    Reject(FramingError),
    /// A new start delimiter arrived at this offset before the frame ended.
    CutAt(usize),
}

fn needs_escape(b: u8) -> bool {
    matches!(b, START | ESCAPE | XON | XOFF)
}

impl XbeeFraming {
    /// An XBee framing for the radio's `AP` mode, capping RF data at `max_message`.
    ///
    /// Frames for [`Destination::Peer`] go to the coordinator (address 0).
    pub fn new(mode: XbeeApiMode, max_message: usize) -> Self {
        Self::with_timeout(mode, max_message, DEFAULT_INTER_BYTE_TIMEOUT)
    }

    /// The same with an explicit inter-byte timeout.
    pub fn with_timeout(mode: XbeeApiMode, max_message: usize, timeout: Duration) -> Self {
        XbeeFraming {
            escaped: mode == XbeeApiMode::Escaped,
            max_message,
            timer: InterByteTimer::new(timeout),
            default_destination: 0,
            next_frame_id: 1,
        }
    }

    /// Sends [`Destination::Peer`] frames to `address` instead of the coordinator.
    pub fn with_default_destination(mut self, address: u64) -> Self {
        self.default_destination = address;
        self
    }

    fn max_frame_data(&self) -> usize {
        self.max_message.saturating_add(TRANSMIT_HEADER)
    }

    /// Reads the frame starting at `buf[0]` (a 0x7E), unescaping in mode 2.
    fn scan(&self, buf: &[u8]) -> Scan {
        let mut raw = Vec::new();
        let mut i = 1;
        let mut need = 3; // length (2) + checksum (1); frame data added once known
        while raw.len() < need {
            let Some(&b) = buf.get(i) else {
                return Scan::Incomplete;
            };
            let b = if self.escaped {
                match b {
                    // In mode 2 a bare 0x7E always starts a frame: this one was cut short.
                    START => return Scan::CutAt(i),
                    ESCAPE => match buf.get(i + 1) {
                        None => return Scan::Incomplete,
                        Some(&START) => return Scan::CutAt(i + 1),
                        Some(&next) => {
                            i += 1;
                            next ^ 0x20
                        }
                    },
                    b => b,
                }
            } else {
                b
            };
            i += 1;
            raw.push(b);
            if raw.len() == 2 {
                let len = usize::from(u16::from_be_bytes([raw[0], raw[1]]));
                if len == 0 || len > self.max_frame_data() {
                    return Scan::Reject(FramingError::Oversize {
                        max: self.max_message,
                    });
                }
                need = 2 + len + 1;
            }
        }
        let checksum = raw.pop().unwrap_or_default();
        Scan::Complete {
            data: raw.split_off(2),
            checksum,
            used: i,
        }
    }

    /// Interprets verified frame data.
    fn frame(data: Vec<u8>) -> Result<Decoded, FramingError> {
        match data.first().copied() {
            Some(RECEIVE_PACKET) => {
                if data.len() < RECEIVE_HEADER {
                    return Err(FramingError::Short { octets: data.len() });
                }
                let mut source = [0u8; 8];
                source.copy_from_slice(&data[1..9]);
                let mut data = Bytes::from(data);
                data.advance(RECEIVE_HEADER);
                Ok(Decoded::Frame(InFrame {
                    message: data,
                    source: Some(u64::from_be_bytes(source)),
                }))
            }
            Some(TRANSMIT_STATUS) => match data.as_slice() {
                [_, frame_id, _, _, _, status, ..] => Ok(Decoded::DeliveryFailed {
                    frame_id: *frame_id,
                    status: *status,
                }),
                _ => Err(FramingError::Short { octets: data.len() }),
            },
            Some(other) => Err(FramingError::IgnoredFrameType(other)),
            None => Err(FramingError::Short { octets: 0 }),
        }
    }

    fn push(&self, b: u8, out: &mut BytesMut) {
        if self.escaped && needs_escape(b) {
            out.extend_from_slice(&[ESCAPE, b ^ 0x20]);
        } else {
            out.extend_from_slice(&[b]);
        }
    }
}

impl Framing for XbeeFraming {
    fn decode(
        &mut self,
        buf: &mut BytesMut,
        now: Instant,
    ) -> Option<Result<Decoded, FramingError>> {
        if let Some(e) = self.timer.expire(buf, now) {
            return Some(Err(e));
        }
        loop {
            let Some(start) = buf.iter().position(|&b| b == START) else {
                if buf.is_empty() {
                    self.timer.waiting(buf, now);
                    return None;
                }
                let octets = buf.len();
                buf.clear();
                self.timer.consumed();
                return Some(Err(FramingError::Noise { octets }));
            };
            if start > 0 {
                buf.advance(start);
                self.timer.consumed();
                return Some(Err(FramingError::Noise { octets: start }));
            }
            match self.scan(buf) {
                Scan::Incomplete => {
                    self.timer.waiting(buf, now);
                    return None;
                }
                Scan::Reject(e) => {
                    buf.advance(1);
                    self.timer.consumed();
                    return Some(Err(e));
                }
                Scan::CutAt(at) => {
                    buf.advance(at);
                    self.timer.consumed();
                    return Some(Err(FramingError::Truncated));
                }
                Scan::Complete {
                    data,
                    checksum,
                    used,
                } => {
                    let sum = data.iter().fold(checksum, |acc, &b| acc.wrapping_add(b));
                    self.timer.consumed();
                    if sum != 0xFF {
                        // Skip only the delimiter: the real frame may start inside this one.
                        buf.advance(1);
                        return Some(Err(FramingError::BadCheck { kind: "checksum" }));
                    }
                    buf.advance(used);
                    match Self::frame(data) {
                        // Delivered (status 0) needs no event.
                        Ok(Decoded::DeliveryFailed { status: 0, .. }) => continue,
                        other => return Some(other),
                    }
                }
            }
        }
    }

    fn encode(&mut self, frame: &OutFrame, out: &mut BytesMut) -> Result<(), FramingError> {
        let message = &frame.message;
        let len = TRANSMIT_HEADER + message.len();
        let Some(len16) = u16::try_from(len)
            .ok()
            .filter(|_| message.len() <= self.max_message)
        else {
            return Err(FramingError::TooLong {
                octets: message.len(),
            });
        };
        let destination = match frame.destination {
            Destination::Peer => self.default_destination,
            Destination::Radio(address) => address,
            Destination::Broadcast => XBEE_BROADCAST,
        };
        let frame_id = self.next_frame_id;
        // Frame id 0 would ask the radio not to report delivery; skip it.
        self.next_frame_id = self.next_frame_id.checked_add(1).unwrap_or(1);
        let mut data = Vec::with_capacity(len);
        data.extend_from_slice(&[TRANSMIT_REQUEST, frame_id]);
        data.extend_from_slice(&destination.to_be_bytes());
        data.extend_from_slice(&UNKNOWN_NETWORK_ADDRESS.to_be_bytes());
        data.extend_from_slice(&[0x00, 0x00]); // broadcast radius: maximum hops; options: none
        data.extend_from_slice(message);
        let checksum = 0xFF - data.iter().fold(0u8, |acc, &b| acc.wrapping_add(b));
        out.reserve(2 * (len + 3) + 1);
        out.extend_from_slice(&[START]);
        for b in len16
            .to_be_bytes()
            .into_iter()
            .chain(data)
            .chain([checksum])
        {
            self.push(b, out);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{decode_all, encapsulated, messages, publish};
    use super::*;

    const SOURCE: u64 = 0x0013_A200_4105_2C7E;

    /// A Receive Packet from SOURCE carrying `rf`, written out by hand (unescaped).
    fn receive_packet(rf: &[u8]) -> Vec<u8> {
        let mut data = vec![
            0x90, 0x00, 0x13, 0xA2, 0x00, 0x41, 0x05, 0x2C, 0x7E, 0x12, 0x34, 0x01,
        ];
        data.extend_from_slice(rf);
        let sum: u32 = data.iter().map(|&b| u32::from(b)).sum();
        let mut frame = vec![0x7E, 0x00, data.len() as u8];
        frame.extend_from_slice(&data);
        frame.push(0xFF - (sum & 0xFF) as u8);
        frame
    }

    fn escape(frame: &[u8]) -> Vec<u8> {
        let mut out = vec![frame[0]];
        for &b in &frame[1..] {
            if needs_escape(b) {
                out.extend([0x7D, b ^ 0x20]);
            } else {
                out.push(b);
            }
        }
        out
    }

    #[test]
    fn a_receive_packet_yields_the_rf_data_and_the_64_bit_source() {
        let mut f = XbeeFraming::new(XbeeApiMode::Unescaped, 1000);
        let mut buf = BytesMut::new();
        let out = decode_all(
            &mut f,
            &mut buf,
            &receive_packet(&[0x02, 0x17]),
            Instant::now(),
        );
        assert_eq!(
            out,
            vec![Ok(Decoded::Frame(InFrame {
                message: Bytes::from_static(&[0x02, 0x17]),
                source: Some(SOURCE),
            }))]
        );
    }

    #[test]
    fn api_mode_2_unescapes_the_frame() {
        let wire = escape(&receive_packet(&[0x02, 0x17]));
        assert!(
            wire.contains(&0x7D),
            "the source address holds a 0x7E to escape"
        );
        let mut f = XbeeFraming::new(XbeeApiMode::Escaped, 1000);
        let mut buf = BytesMut::new();
        let out = decode_all(&mut f, &mut buf, &wire, Instant::now());
        assert_eq!(messages(&out), vec![Bytes::from_static(&[0x02, 0x17])]);
    }

    #[test]
    fn a_transmit_request_matches_the_documented_layout() {
        let mut f = XbeeFraming::new(XbeeApiMode::Unescaped, 1000);
        let mut out = BytesMut::new();
        let frame = OutFrame {
            message: Bytes::from_static(&[0x02, 0x17]),
            destination: Destination::Radio(0x0013_A200_4105_2C00),
        };
        f.encode(&frame, &mut out).unwrap();
        let data = [
            0x10, 0x01, 0x00, 0x13, 0xA2, 0x00, 0x41, 0x05, 0x2C, 0x00, 0xFF, 0xFE, 0x00, 0x00,
            0x02, 0x17,
        ];
        let sum: u32 = data.iter().map(|&b| u32::from(b)).sum();
        let mut expected = vec![0x7E, 0x00, 0x10];
        expected.extend_from_slice(&data);
        expected.push(0xFF - (sum & 0xFF) as u8);
        assert_eq!(&out[..], &expected[..]);
    }

    #[test]
    fn broadcast_goes_to_ffff_and_mode_2_escapes_the_request() {
        let mut f = XbeeFraming::new(XbeeApiMode::Escaped, 1000);
        let mut out = BytesMut::new();
        let frame = OutFrame {
            message: Bytes::from_static(&[0x03, 0x01, 0x7E]),
            destination: Destination::Broadcast,
        };
        f.encode(&frame, &mut out).unwrap();
        let mut plain = XbeeFraming::new(XbeeApiMode::Unescaped, 1000);
        let mut unescaped = BytesMut::new();
        plain.encode(&frame, &mut unescaped).unwrap();
        assert_eq!(&unescaped[5..13], &0xFFFFu64.to_be_bytes());
        assert_eq!(&out[..], &escape(&unescaped)[..]);
    }

    #[test]
    fn frame_ids_run_from_1_to_255_and_skip_0() {
        let mut f = XbeeFraming::new(XbeeApiMode::Unescaped, 1000);
        let frame = OutFrame::to_peer(Bytes::from_static(&[0x02, 0x17]));
        let ids: Vec<u8> = (0..256)
            .map(|_| {
                let mut out = BytesMut::new();
                f.encode(&frame, &mut out).unwrap();
                out[4]
            })
            .collect();
        assert_eq!((ids[0], ids[254], ids[255]), (1, 255, 1));
    }

    #[test]
    fn a_failed_transmit_status_is_reported() {
        // 8B, frame id 7, 16-bit address FFFE, 0 retries, status 0x21 (network ACK failure), discovery 0.
        let data = [0x8B, 0x07, 0xFF, 0xFE, 0x00, 0x21, 0x00];
        let sum: u32 = data.iter().map(|&b| u32::from(b)).sum();
        let mut wire = vec![0x7E, 0x00, 0x07];
        wire.extend_from_slice(&data);
        wire.push(0xFF - (sum & 0xFF) as u8);
        let mut f = XbeeFraming::new(XbeeApiMode::Unescaped, 1000);
        let mut buf = BytesMut::new();
        let out = decode_all(&mut f, &mut buf, &wire, Instant::now());
        assert_eq!(
            out,
            vec![Ok(Decoded::DeliveryFailed {
                frame_id: 7,
                status: 0x21
            })]
        );
    }

    #[test]
    fn a_successful_transmit_status_is_silent() {
        let data = [0x8B, 0x07, 0xFF, 0xFE, 0x00, 0x00, 0x00];
        let sum: u32 = data.iter().map(|&b| u32::from(b)).sum();
        let mut wire = vec![0x7E, 0x00, 0x07];
        wire.extend_from_slice(&data);
        wire.push(0xFF - (sum & 0xFF) as u8);
        let mut f = XbeeFraming::new(XbeeApiMode::Unescaped, 1000);
        let mut buf = BytesMut::new();
        assert!(decode_all(&mut f, &mut buf, &wire, Instant::now()).is_empty());
    }

    #[test]
    fn other_frame_types_are_ignored_and_counted() {
        // 0x8A modem status "associated".
        let wire = [0x7E, 0x00, 0x02, 0x8A, 0x02, 0x73];
        let mut f = XbeeFraming::new(XbeeApiMode::Unescaped, 1000);
        let mut buf = BytesMut::new();
        let out = decode_all(&mut f, &mut buf, &wire, Instant::now());
        assert_eq!(out, vec![Err(FramingError::IgnoredFrameType(0x8A))]);
        assert!(buf.is_empty());
    }

    #[test]
    fn a_bad_checksum_drops_the_frame_and_the_next_frame_survives() {
        let mut bad = receive_packet(&[0x02, 0x17]);
        let n = bad.len();
        bad[n - 1] ^= 0x55;
        let wire = [bad, receive_packet(&[0x02, 0x16])].concat();
        let mut f = XbeeFraming::new(XbeeApiMode::Unescaped, 1000);
        let mut buf = BytesMut::new();
        let out = decode_all(&mut f, &mut buf, &wire, Instant::now());
        assert_eq!(out[0], Err(FramingError::BadCheck { kind: "checksum" }));
        assert_eq!(messages(&out), vec![Bytes::from_static(&[0x02, 0x16])]);
    }

    #[test]
    fn noise_between_frames_is_skipped() {
        let wire = [
            &[0x01, 0x02, 0x03][..],
            &escape(&receive_packet(b"\x02\x17")),
            &[0x55],
            &escape(&receive_packet(b"\x02\x16")),
        ]
        .concat();
        let mut f = XbeeFraming::new(XbeeApiMode::Escaped, 1000);
        let mut buf = BytesMut::new();
        let out = decode_all(&mut f, &mut buf, &wire, Instant::now());
        assert_eq!(out[0], Err(FramingError::Noise { octets: 3 }));
        assert_eq!(messages(&out).len(), 2);
    }

    #[test]
    fn round_trip_through_a_receive_packet() {
        // The gateway's encoder writes Transmit Requests; the peer radio turns them into
        // Receive Packets, so the round trip goes through both layouts.
        let message = publish(&[0x7E, 0x7D, 0x11, 0x13]);
        let mut f = XbeeFraming::new(XbeeApiMode::Escaped, 1000);
        let mut buf = BytesMut::new();
        let out = decode_all(
            &mut f,
            &mut buf,
            &escape(&receive_packet(&message)),
            Instant::now(),
        );
        assert_eq!(messages(&out), vec![message]);
    }

    #[test]
    fn a_frame_split_at_every_boundary_decodes_once() {
        let wire = escape(&receive_packet(&publish(b"split")));
        for cut in 0..=wire.len() {
            let mut f = XbeeFraming::new(XbeeApiMode::Escaped, 1000);
            let mut buf = BytesMut::new();
            let now = Instant::now();
            let mut out = decode_all(&mut f, &mut buf, &wire[..cut], now);
            out.extend(decode_all(&mut f, &mut buf, &wire[cut..], now));
            assert_eq!(messages(&out), vec![publish(b"split")], "cut at {cut}");
        }
    }

    #[test]
    fn a_partial_frame_is_discarded_after_the_inter_byte_timeout() {
        let wire = receive_packet(&[0x02, 0x17]);
        let mut f = XbeeFraming::new(XbeeApiMode::Unescaped, 1000);
        let mut buf = BytesMut::new();
        let t0 = Instant::now();
        assert!(decode_all(&mut f, &mut buf, &wire[..6], t0).is_empty());
        let out = decode_all(&mut f, &mut buf, &wire, t0 + Duration::from_millis(60));
        assert_eq!(out[0], Err(FramingError::Timeout { octets: 6 }));
        assert_eq!(messages(&out), vec![Bytes::from_static(&[0x02, 0x17])]);
    }

    #[test]
    fn in_mode_2_a_start_delimiter_cuts_a_partial_frame_short() {
        let wire = receive_packet(&[0x02, 0x17]);
        let mut f = XbeeFraming::new(XbeeApiMode::Escaped, 1000);
        let mut buf = BytesMut::new();
        let input = [&escape(&wire)[..6], &escape(&wire)].concat();
        let out = decode_all(&mut f, &mut buf, &input, Instant::now());
        assert_eq!(out[0], Err(FramingError::Truncated));
        assert_eq!(messages(&out), vec![Bytes::from_static(&[0x02, 0x17])]);
    }

    #[test]
    fn a_length_above_the_cap_skips_the_delimiter() {
        let mut f = XbeeFraming::new(XbeeApiMode::Unescaped, 10);
        let mut buf = BytesMut::new();
        let out = decode_all(&mut f, &mut buf, &[0x7E, 0xFF, 0xFF, 0x00], Instant::now());
        assert_eq!(out[0], Err(FramingError::Oversize { max: 10 }));
        assert!(buf.is_empty());
    }

    #[test]
    fn a_forwarder_encapsulation_passes_through_intact() {
        let enc = encapsulated();
        let mut f = XbeeFraming::new(XbeeApiMode::Escaped, 1000);
        let mut buf = BytesMut::new();
        let out = decode_all(
            &mut f,
            &mut buf,
            &escape(&receive_packet(&enc)),
            Instant::now(),
        );
        assert_eq!(messages(&out), vec![enc]);
    }
}
