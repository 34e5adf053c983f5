//! `slip`: RFC 1055 SLIP frames, optionally with a CRC-16 trailer.
//!
//! Each frame is the MQTT-SN message, then (with `crc = true`) its
//! CRC-16/CCITT-FALSE big-endian, then SLIP escaping, between END octets. The
//! encoder sends END before and after every frame so that line noise before a
//! frame ends up in a frame of its own, which the CRC (or the gateway) rejects.

use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};

use super::{
    DEFAULT_INTER_BYTE_TIMEOUT, Decoded, Framing, FramingError, InFrame, InterByteTimer, OutFrame,
};

/// RFC 1055 frame delimiter.
pub const END: u8 = 0xC0;
/// RFC 1055 escape octet.
pub const ESC: u8 = 0xDB;
/// ESC ESC_END stands for a data octet 0xC0.
pub const ESC_END: u8 = 0xDC;
/// ESC ESC_ESC stands for a data octet 0xDB.
pub const ESC_ESC: u8 = 0xDD;

/// CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final XOR (check 0x29B1).
pub const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_3740);

/// Decoder and encoder for SLIP frames.
#[derive(Debug, Clone)]
pub struct SlipFraming {
    crc: bool,
    max_message: usize,
    timer: InterByteTimer,
    /// Dropping an oversized frame until its closing END.
    discarding: bool,
}

impl SlipFraming {
    /// A SLIP framing, with or without the CRC-16 trailer, capping messages at `max_message`.
    pub fn new(crc: bool, max_message: usize) -> Self {
        Self::with_timeout(crc, max_message, DEFAULT_INTER_BYTE_TIMEOUT)
    }

    /// The same with an explicit inter-byte timeout.
    pub fn with_timeout(crc: bool, max_message: usize, timeout: Duration) -> Self {
        SlipFraming {
            crc,
            max_message,
            timer: InterByteTimer::new(timeout),
            discarding: false,
        }
    }

    fn max_frame(&self) -> usize {
        self.max_message + if self.crc { 2 } else { 0 }
    }

    /// Undoes the escaping of one frame body (without its END).
    fn unescape(&self, body: &[u8]) -> Result<Vec<u8>, FramingError> {
        let mut out = Vec::with_capacity(body.len());
        let mut bytes = body.iter();
        while let Some(&b) = bytes.next() {
            let data = match b {
                ESC => match bytes.next() {
                    Some(&ESC_END) => END,
                    Some(&ESC_ESC) => ESC,
                    _ => return Err(FramingError::BadEscape),
                },
                other => other,
            };
            out.push(data);
        }
        if out.len() > self.max_frame() {
            return Err(FramingError::Oversize {
                max: self.max_message,
            });
        }
        Ok(out)
    }

    /// Checks and strips the CRC trailer when the framing uses one.
    fn check(&self, mut frame: Vec<u8>) -> Result<Bytes, FramingError> {
        if !self.crc {
            return Ok(Bytes::from(frame));
        }
        let Some(split) = frame.len().checked_sub(2).filter(|&n| n > 0) else {
            return Err(FramingError::Short {
                octets: frame.len(),
            });
        };
        let trailer = frame.split_off(split);
        let expected = u16::from_be_bytes([trailer[0], trailer[1]]);
        if CRC16.checksum(&frame) != expected {
            return Err(FramingError::BadCheck { kind: "CRC-16" });
        }
        Ok(Bytes::from(frame))
    }
}

impl Framing for SlipFraming {
    fn decode(
        &mut self,
        buf: &mut BytesMut,
        now: Instant,
    ) -> Option<Result<Decoded, FramingError>> {
        if let Some(e) = self.timer.expire(buf, now) {
            self.discarding = false;
            return Some(Err(e));
        }
        loop {
            let Some(end) = buf.iter().position(|&b| b == END) else {
                // Worst case every octet is escaped: beyond that no frame can fit.
                if buf.len() > 2 * self.max_frame() {
                    let octets = buf.len();
                    buf.clear();
                    self.timer.consumed();
                    let was_discarding = std::mem::replace(&mut self.discarding, true);
                    if was_discarding {
                        return Some(Err(FramingError::Noise { octets }));
                    }
                    return Some(Err(FramingError::Oversize {
                        max: self.max_message,
                    }));
                }
                self.timer.waiting(buf, now);
                return None;
            };
            let body = buf.split_to(end);
            buf.advance(1);
            self.timer.consumed();
            if std::mem::take(&mut self.discarding) {
                return Some(Err(FramingError::Noise {
                    octets: body.len() + 1,
                }));
            }
            // RFC 1055: back-to-back ENDs delimit empty frames, which carry nothing.
            if body.is_empty() {
                continue;
            }
            let result = self.unescape(&body).and_then(|f| self.check(f));
            return Some(result.map(|message| {
                Decoded::Frame(InFrame {
                    message,
                    source: None,
                })
            }));
        }
    }

    fn encode(&mut self, frame: &OutFrame, out: &mut BytesMut) -> Result<(), FramingError> {
        let message = &frame.message;
        if message.len() > self.max_message {
            return Err(FramingError::TooLong {
                octets: message.len(),
            });
        }
        out.reserve(message.len() + 8);
        out.extend_from_slice(&[END]);
        let crc = CRC16.checksum(message).to_be_bytes();
        let trailer: &[u8] = if self.crc { &crc } else { &[] };
        for &b in message.iter().chain(trailer) {
            match b {
                END => out.extend_from_slice(&[ESC, ESC_END]),
                ESC => out.extend_from_slice(&[ESC, ESC_ESC]),
                other => out.extend_from_slice(&[other]),
            }
        }
        out.extend_from_slice(&[END]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{decode_all, encapsulated, messages, publish};
    use super::*;

    fn encoded(f: &mut SlipFraming, message: &Bytes) -> BytesMut {
        let mut out = BytesMut::new();
        f.encode(&OutFrame::to_peer(message.clone()), &mut out)
            .unwrap();
        out
    }

    #[test]
    fn crc16_is_ccitt_false_with_check_value_29b1() {
        assert_eq!(CRC16.checksum(b"123456789"), 0x29B1);
    }

    #[test]
    fn a_frame_is_end_escaped_message_end() {
        let mut f = SlipFraming::new(false, 1000);
        let message = Bytes::from_static(&[0x04, 0x0C, 0xC0, 0xDB]);
        assert_eq!(
            &encoded(&mut f, &message)[..],
            &[0xC0, 0x04, 0x0C, 0xDB, 0xDC, 0xDB, 0xDD, 0xC0]
        );
    }

    #[test]
    fn the_crc_trailer_is_big_endian_and_escaped_with_the_message() {
        let mut f = SlipFraming::new(true, 1000);
        let message = Bytes::from_static(&[0x02, 0x17]);
        let crc = CRC16.checksum(&[0x02, 0x17]).to_be_bytes();
        let mut expected = vec![0xC0, 0x02, 0x17];
        for b in crc {
            match b {
                0xC0 => expected.extend([0xDB, 0xDC]),
                0xDB => expected.extend([0xDB, 0xDD]),
                b => expected.push(b),
            }
        }
        expected.push(0xC0);
        assert_eq!(&encoded(&mut f, &message)[..], &expected[..]);
    }

    #[test]
    fn a_known_crc_frame_decodes() {
        // PINGRESP 02 17; CRC-16/CCITT-FALSE over it computed by hand from the definition.
        let crc = CRC16.checksum(&[0x02, 0x17]);
        let mut f = SlipFraming::new(true, 1000);
        let mut buf = BytesMut::new();
        let wire = [0xC0, 0x02, 0x17, (crc >> 8) as u8, crc as u8, 0xC0];
        let out = decode_all(&mut f, &mut buf, &wire, Instant::now());
        assert_eq!(messages(&out), vec![Bytes::from_static(&[0x02, 0x17])]);
    }

    #[test]
    fn round_trip_with_and_without_crc() {
        for crc in [false, true] {
            let mut f = SlipFraming::new(crc, 1000);
            let message = publish(&[0xC0, 0xDB, 0xDC, 0xDD, 0x00]);
            let wire = encoded(&mut f, &message);
            let mut buf = BytesMut::new();
            let out = decode_all(&mut f, &mut buf, &wire, Instant::now());
            assert_eq!(
                out,
                vec![Ok(Decoded::Frame(InFrame {
                    message,
                    source: None
                }))]
            );
        }
    }

    #[test]
    fn empty_frames_between_ends_are_ignored() {
        let mut f = SlipFraming::new(false, 1000);
        let mut buf = BytesMut::new();
        let out = decode_all(
            &mut f,
            &mut buf,
            &[0xC0, 0xC0, 0xC0, 0x02, 0x17, 0xC0],
            Instant::now(),
        );
        assert_eq!(out.len(), 1);
        assert_eq!(messages(&out), vec![Bytes::from_static(&[0x02, 0x17])]);
    }

    #[test]
    fn a_crc_mismatch_drops_the_frame() {
        let mut f = SlipFraming::new(true, 1000);
        let mut wire = encoded(&mut f, &publish(b"abc"));
        let n = wire.len();
        wire[n - 3] ^= 0x01;
        let mut buf = BytesMut::new();
        let out = decode_all(&mut f, &mut buf, &wire, Instant::now());
        assert_eq!(out, vec![Err(FramingError::BadCheck { kind: "CRC-16" })]);
    }

    #[test]
    fn an_invalid_escape_drops_the_frame() {
        let mut f = SlipFraming::new(false, 1000);
        let mut buf = BytesMut::new();
        let out = decode_all(
            &mut f,
            &mut buf,
            &[0xC0, 0x02, 0xDB, 0x17, 0xC0],
            Instant::now(),
        );
        assert_eq!(out, vec![Err(FramingError::BadEscape)]);
    }

    #[test]
    fn noise_before_a_frame_is_rejected_by_the_crc_and_the_frame_survives() {
        let mut f = SlipFraming::new(true, 1000);
        let message = publish(b"x");
        let wire = [&[0x11, 0x22, 0x33][..], &encoded(&mut f, &message)].concat();
        let mut buf = BytesMut::new();
        let out = decode_all(&mut f, &mut buf, &wire, Instant::now());
        assert_eq!(messages(&out), vec![message]);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn a_frame_split_at_every_boundary_decodes_once() {
        let mut enc = SlipFraming::new(true, 1000);
        let message = publish(&[0xC0, 1, 2, 0xDB]);
        let wire = encoded(&mut enc, &message);
        for cut in 0..=wire.len() {
            let mut f = SlipFraming::new(true, 1000);
            let mut buf = BytesMut::new();
            let now = Instant::now();
            let mut out = decode_all(&mut f, &mut buf, &wire[..cut], now);
            out.extend(decode_all(&mut f, &mut buf, &wire[cut..], now));
            assert_eq!(messages(&out), vec![message.clone()], "cut at {cut}");
        }
    }

    #[test]
    fn a_partial_frame_is_discarded_after_the_inter_byte_timeout() {
        let mut f = SlipFraming::new(false, 1000);
        let mut buf = BytesMut::new();
        let t0 = Instant::now();
        // A frame whose sender lost the leading END and reset mid-frame.
        assert!(decode_all(&mut f, &mut buf, &[0x05, 0x0C], t0).is_empty());
        let out = decode_all(
            &mut f,
            &mut buf,
            &[0x02, 0x17, 0xC0],
            t0 + Duration::from_millis(80),
        );
        assert_eq!(out[0], Err(FramingError::Timeout { octets: 2 }));
        assert_eq!(messages(&out), vec![Bytes::from_static(&[0x02, 0x17])]);
    }

    #[test]
    fn an_endless_frame_is_dropped_at_the_cap_and_the_next_frame_survives() {
        let mut f = SlipFraming::new(false, 16);
        let mut buf = BytesMut::new();
        let now = Instant::now();
        let out = decode_all(&mut f, &mut buf, &[0x41; 100], now);
        assert_eq!(out, vec![Err(FramingError::Oversize { max: 16 })]);
        assert!(buf.is_empty());
        let out = decode_all(&mut f, &mut buf, &[0x41, 0xC0, 0x02, 0x17, 0xC0], now);
        assert_eq!(out[0], Err(FramingError::Noise { octets: 2 }));
        assert_eq!(messages(&out), vec![Bytes::from_static(&[0x02, 0x17])]);
    }

    #[test]
    fn a_forwarder_encapsulation_passes_through_intact() {
        let mut f = SlipFraming::new(true, 1000);
        let enc = encapsulated();
        let wire = encoded(&mut f, &enc);
        let mut buf = BytesMut::new();
        let out = decode_all(&mut f, &mut buf, &wire, Instant::now());
        assert_eq!(messages(&out), vec![enc]);
    }
}
