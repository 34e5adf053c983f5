//! `raw`: MQTT-SN messages back to back, delimited only by their own Length field.
//!
//! The byte stream carries nothing but the messages, so resynchronisation rests
//! on three rules: a partial message that goes quiet for the inter-byte timeout
//! is discarded; a Length that cannot be right (0x00, a long form below 4, over
//! the cap) skips one octet; and a candidate the MQTT-SN codec rejects skips one
//! octet and is retried from the next.

use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};

use super::{
    DEFAULT_INTER_BYTE_TIMEOUT, Decoded, Framing, FramingError, InFrame, InterByteTimer, OutFrame,
};
use crate::mqttsn::codec;

/// MsgType of the forwarder encapsulation (MQTT-SN 1.2 §5.5).
const ENCAPSULATED: u8 = 0xFE;
/// First Length octet announcing the 3-octet form (MQTT-SN 1.2 §5.2.1).
const LONG_FORM: u8 = 0x01;

/// Decoder and encoder for bare MQTT-SN messages.
#[derive(Debug, Clone)]
pub struct RawFraming {
    max_message: usize,
    timer: InterByteTimer,
}

/// What the Length field at the start of a buffer says.
enum Extent {
    /// The whole candidate is this many octets.
    Total(usize),
    /// Not enough octets yet to know.
    Unknown,
    /// This cannot be the start of a message.
    Impossible,
}

impl RawFraming {
    /// A decoder capping messages at `max_message` octets, with the default 50 ms timeout.
    pub fn new(max_message: usize) -> Self {
        Self::with_timeout(max_message, DEFAULT_INTER_BYTE_TIMEOUT)
    }

    /// A decoder with an explicit inter-byte timeout.
    pub fn with_timeout(max_message: usize, timeout: Duration) -> Self {
        RawFraming {
            max_message,
            timer: InterByteTimer::new(timeout),
        }
    }

    /// The declared length of the message at the start of `buf` (header form only).
    fn declared(buf: &[u8]) -> Extent {
        match buf {
            [] => Extent::Unknown,
            [0x00, ..] => Extent::Impossible,
            [LONG_FORM, hi, lo, ..] => match u16::from_be_bytes([*hi, *lo]) {
                n if n < 4 => Extent::Impossible,
                n => Extent::Total(usize::from(n)),
            },
            [LONG_FORM, ..] => Extent::Unknown,
            [n, ..] => Extent::Total(usize::from(*n)),
        }
    }

    /// The length of the candidate at the start of `buf`: an encapsulation's
    /// Length covers only its own header, so the inner message's is added.
    fn extent(&self, buf: &[u8]) -> Extent {
        let outer = match Self::declared(buf) {
            Extent::Total(n) => n,
            other => return other,
        };
        let type_at = if buf.first() == Some(&LONG_FORM) {
            3
        } else {
            1
        };
        let total = match buf.get(type_at) {
            None => return Extent::Unknown,
            Some(&ENCAPSULATED) => {
                let Some(inner_buf) = buf.get(outer..) else {
                    return Extent::Unknown;
                };
                match Self::declared(inner_buf) {
                    Extent::Total(inner) => outer + inner,
                    other => return other,
                }
            }
            Some(_) => outer,
        };
        if total < 2 || total > self.max_message {
            Extent::Impossible
        } else {
            Extent::Total(total)
        }
    }
}

impl Framing for RawFraming {
    fn decode(
        &mut self,
        buf: &mut BytesMut,
        now: Instant,
    ) -> Option<Result<Decoded, FramingError>> {
        if let Some(e) = self.timer.expire(buf, now) {
            return Some(Err(e));
        }
        let mut skipped = 0;
        loop {
            let total = match self.extent(&buf[skipped..]) {
                Extent::Total(n) => n,
                Extent::Impossible => {
                    skipped += 1;
                    continue;
                }
                Extent::Unknown => break,
            };
            let Some(candidate) = buf.get(skipped..skipped + total) else {
                break;
            };
            // Cheap check first so that a flood of noise is not copied octet by octet.
            if codec::peek_msg_type(candidate)
                .and_then(codec::MsgType::from_u8)
                .is_none()
            {
                skipped += 1;
                continue;
            }
            let candidate = bytes::Bytes::copy_from_slice(candidate);
            if codec::decode(&candidate).is_err() {
                skipped += 1;
                continue;
            }
            if skipped > 0 {
                // Report the noise first; the good message is taken on the next call.
                buf.advance(skipped);
                self.timer.consumed();
                return Some(Err(FramingError::Noise { octets: skipped }));
            }
            buf.advance(total);
            self.timer.consumed();
            return Some(Ok(Decoded::Frame(InFrame {
                message: candidate,
                source: None,
            })));
        }
        if skipped > 0 {
            buf.advance(skipped);
            self.timer.consumed();
            return Some(Err(FramingError::Noise { octets: skipped }));
        }
        self.timer.waiting(buf, now);
        None
    }

    fn encode(&mut self, frame: &OutFrame, out: &mut BytesMut) -> Result<(), FramingError> {
        if frame.message.len() > self.max_message {
            return Err(FramingError::TooLong {
                octets: frame.message.len(),
            });
        }
        out.extend_from_slice(&frame.message);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::super::test_support::{decode_all, encapsulated, messages, publish};
    use super::*;

    fn framing() -> RawFraming {
        RawFraming::new(super::super::DEFAULT_MAX_MESSAGE)
    }

    #[test]
    fn a_pingresp_on_the_line_decodes_as_one_message() {
        let mut f = framing();
        let mut buf = BytesMut::new();
        let out = decode_all(&mut f, &mut buf, &[0x02, 0x17], Instant::now());
        assert_eq!(messages(&out), vec![Bytes::from_static(&[0x02, 0x17])]);
        assert!(buf.is_empty());
    }

    #[test]
    fn a_long_form_message_is_delimited_by_its_16_bit_length() {
        let message = publish(&[0x55; 300]);
        assert_eq!(&message[..3], &[0x01, 0x01, 0x35]);
        let mut f = framing();
        let mut buf = BytesMut::new();
        let out = decode_all(&mut f, &mut buf, &message, Instant::now());
        assert_eq!(messages(&out), vec![message]);
    }

    #[test]
    fn encoding_writes_the_message_unchanged() {
        let mut out = BytesMut::new();
        framing()
            .encode(
                &OutFrame::to_peer(Bytes::from_static(&[0x02, 0x17])),
                &mut out,
            )
            .unwrap();
        assert_eq!(&out[..], &[0x02, 0x17]);
    }

    #[test]
    fn back_to_back_messages_are_split_by_their_lengths() {
        let mut f = framing();
        let mut buf = BytesMut::new();
        let a = publish(b"a");
        let b = publish(b"bb");
        let out = decode_all(&mut f, &mut buf, &[&a[..], &b[..]].concat(), Instant::now());
        assert_eq!(messages(&out), vec![a, b]);
    }

    #[test]
    fn a_zero_length_octet_skips_one_octet() {
        let mut f = framing();
        let mut buf = BytesMut::new();
        let out = decode_all(&mut f, &mut buf, &[0x00, 0x02, 0x17], Instant::now());
        assert_eq!(out[0], Err(FramingError::Noise { octets: 1 }));
        assert_eq!(messages(&out), vec![Bytes::from_static(&[0x02, 0x17])]);
    }

    #[test]
    fn a_candidate_the_codec_rejects_skips_one_octet_and_retries() {
        // 0x02 0x02 would be a GWINFO without its GwId, which the codec rejects.
        let mut f = framing();
        let mut buf = BytesMut::new();
        let out = decode_all(
            &mut f,
            &mut buf,
            &[0x02, 0x02, 0x02, 0x02, 0x17],
            Instant::now(),
        );
        assert_eq!(messages(&out), vec![Bytes::from_static(&[0x02, 0x17])]);
        assert!(out.contains(&Err(FramingError::Noise { octets: 3 })));
    }

    #[test]
    fn a_length_above_the_cap_is_skipped() {
        let mut f = RawFraming::new(10);
        let mut buf = BytesMut::new();
        let big = publish(&[0; 20]);
        let out = decode_all(
            &mut f,
            &mut buf,
            &[&big[..], &[0x02, 0x17]].concat(),
            Instant::now(),
        );
        assert_eq!(messages(&out), vec![Bytes::from_static(&[0x02, 0x17])]);
        assert!(buf.len() < 10, "nothing above the cap stays buffered");
    }

    #[test]
    fn a_half_message_is_discarded_after_the_inter_byte_timeout() {
        let mut f = framing();
        let mut buf = BytesMut::new();
        let t0 = Instant::now();
        let half = &publish(b"hello")[..4];
        assert!(decode_all(&mut f, &mut buf, half, t0).is_empty());
        let full = publish(b"x");
        let out = decode_all(&mut f, &mut buf, &full, t0 + Duration::from_millis(60));
        assert_eq!(out[0], Err(FramingError::Timeout { octets: 4 }));
        assert_eq!(messages(&out), vec![full]);
    }

    #[test]
    fn a_quiet_tick_expires_a_partial_message() {
        let mut f = framing();
        let mut buf = BytesMut::new();
        let t0 = Instant::now();
        decode_all(&mut f, &mut buf, &[0x07, 0x0C], t0);
        assert!(decode_all(&mut f, &mut buf, &[], t0 + Duration::from_millis(30)).is_empty());
        let out = decode_all(&mut f, &mut buf, &[], t0 + Duration::from_millis(55));
        assert_eq!(out, vec![Err(FramingError::Timeout { octets: 2 })]);
        assert!(buf.is_empty());
    }

    #[test]
    fn a_message_split_at_every_boundary_decodes_once() {
        let message = publish(b"split me");
        for cut in 0..=message.len() {
            let mut f = framing();
            let mut buf = BytesMut::new();
            let now = Instant::now();
            let mut out = decode_all(&mut f, &mut buf, &message[..cut], now);
            out.extend(decode_all(&mut f, &mut buf, &message[cut..], now));
            assert_eq!(messages(&out), vec![message.clone()], "cut at {cut}");
        }
    }

    #[test]
    fn a_forwarder_encapsulation_passes_through_intact() {
        let mut f = framing();
        let mut buf = BytesMut::new();
        let enc = encapsulated();
        let out = decode_all(
            &mut f,
            &mut buf,
            &[&enc[..], &[0x02, 0x17]].concat(),
            Instant::now(),
        );
        assert_eq!(messages(&out), vec![enc, Bytes::from_static(&[0x02, 0x17])]);
    }
}
