//! Sans-IO framings that carry MQTT-SN datagrams over a serial byte stream.
//!
//! MQTT-SN 1.2 defines no serial framing (it assumes a datagram service), so a
//! serial line needs one: `raw` (the message's own Length field), `slip`
//! (RFC 1055, optional CRC-16) or `xbee` (Digi API frames). Each decoder takes
//! the bytes read so far and the time they were seen; none buffers more than a
//! bounded amount, and every byte it throws away is reported as an error so the
//! link can count it.

use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

use crate::config::{Framing as FramingKind, SerialConfig};

pub mod raw;
pub mod slip;
pub mod xbee;

pub use raw::RawFraming;
pub use slip::SlipFraming;
pub use xbee::XbeeFraming;

/// Default cap on one MQTT-SN message: the largest the 3-octet Length form can declare.
pub const DEFAULT_MAX_MESSAGE: usize = 65_535;

/// Default silence after which a partial frame is thrown away.
pub const DEFAULT_INTER_BYTE_TIMEOUT: Duration = Duration::from_millis(50);

/// XBee 64-bit broadcast address, used for ADVERTISE/GWINFO/SEARCHGW.
pub const XBEE_BROADCAST: u64 = 0x0000_0000_0000_FFFF;

/// One MQTT-SN datagram read from the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFrame {
    /// The MQTT-SN message (possibly a forwarder encapsulation), undecoded.
    pub message: Bytes,
    /// The 64-bit address of the sending radio (XBee only): one sensor session per radio.
    pub source: Option<u64>,
}

/// What a decoder yields besides errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A datagram for the gateway or client.
    Frame(InFrame),
    /// The local radio reports that a frame we sent was not delivered (XBee 0x8B).
    DeliveryFailed {
        /// Frame id of our Transmit Request.
        frame_id: u8,
        /// Delivery status octet (non-zero).
        status: u8,
    },
}

/// Where an outgoing datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// The other end of the line (for XBee: the framing's default destination).
    Peer,
    /// One remote radio by its 64-bit address (XBee).
    Radio(u64),
    /// Every radio in range (XBee: 0x000000000000FFFF); ADVERTISE, GWINFO, SEARCHGW.
    Broadcast,
}

/// One MQTT-SN datagram to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFrame {
    /// The encoded MQTT-SN message.
    pub message: Bytes,
    /// Its destination.
    pub destination: Destination,
}

impl OutFrame {
    /// A datagram for the peer at the other end of the line.
    pub fn to_peer(message: Bytes) -> OutFrame {
        OutFrame {
            message,
            destination: Destination::Peer,
        }
    }
}

/// Bytes a decoder discarded, and why. Each one is counted, never fatal.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FramingError {
    /// Bytes that do not start a frame were skipped while resynchronising.
    #[error("skipped {octets} octets of noise")]
    Noise {
        /// How many.
        octets: usize,
    },
    /// A partial frame went silent for longer than the inter-byte timeout.
    #[error("discarded {octets} octets of a partial frame after an inter-byte timeout")]
    Timeout {
        /// How many.
        octets: usize,
    },
    /// A frame grew past the configured maximum message size.
    #[error("discarded a frame longer than the {max} octet maximum")]
    Oversize {
        /// The cap.
        max: usize,
    },
    /// A SLIP frame with an ESC not followed by ESC_END or ESC_ESC.
    #[error("SLIP frame with an invalid escape sequence")]
    BadEscape,
    /// A frame whose CRC-16 or checksum does not match its contents.
    #[error("dropped a frame with a bad {kind}")]
    BadCheck {
        /// "CRC-16" or "checksum".
        kind: &'static str,
    },
    /// A frame too short to hold its mandatory fields.
    #[error("dropped a {octets} octet frame, too short")]
    Short {
        /// Its length.
        octets: usize,
    },
    /// An XBee API frame cut short by the next start delimiter (API mode 2).
    #[error("XBee frame cut short by a start delimiter")]
    Truncated,
    /// An XBee API frame type the gateway does not use.
    #[error("ignored XBee API frame type {0:#04x}")]
    IgnoredFrameType(u8),
    /// An outgoing message that the framing cannot carry.
    #[error("cannot frame a {octets} octet message")]
    TooLong {
        /// Its length.
        octets: usize,
    },
}

impl FramingError {
    /// Roughly how many received octets this error threw away (for rate limits).
    pub fn discarded_octets(&self) -> usize {
        match self {
            FramingError::Noise { octets }
            | FramingError::Timeout { octets }
            | FramingError::Short { octets } => *octets,
            FramingError::Oversize { max } => *max,
            FramingError::BadEscape
            | FramingError::BadCheck { .. }
            | FramingError::Truncated
            | FramingError::IgnoredFrameType(_) => 1,
            // Outgoing: nothing received was discarded.
            FramingError::TooLong { .. } => 0,
        }
    }
}

/// A framing: a stateful decoder and an encoder for one serial line.
pub trait Framing: Send {
    /// Takes the next datagram, event or error out of `buf`, or `None` when more bytes are needed.
    ///
    /// Call it after every read, with the time of that read, until it returns
    /// `None`; also call it when the line has been quiet, so that a partial frame
    /// can time out.
    fn decode(&mut self, buf: &mut BytesMut, now: Instant)
    -> Option<Result<Decoded, FramingError>>;

    /// Appends `frame`, framed, to `out`.
    fn encode(&mut self, frame: &OutFrame, out: &mut BytesMut) -> Result<(), FramingError>;
}

/// The framing a `[[gateway.serial]]` entry asks for.
pub fn for_config(config: &SerialConfig, max_message: usize) -> Box<dyn Framing> {
    match config.framing {
        FramingKind::Raw => Box::new(RawFraming::new(max_message)),
        FramingKind::Slip => Box::new(SlipFraming::new(config.crc, max_message)),
        FramingKind::Xbee => Box::new(XbeeFraming::new(config.api_mode, max_message)),
    }
}

/// Tracks how long the undecoded tail of the buffer has been waiting, so that
/// a half frame left by a reset sender does not swallow the next good frame.
#[derive(Debug, Clone)]
pub(crate) struct InterByteTimer {
    timeout: Duration,
    /// Octets left undecoded at the end of the last `decode` call.
    pending: usize,
    /// When those octets were last added to.
    since: Option<Instant>,
}

impl InterByteTimer {
    pub(crate) fn new(timeout: Duration) -> Self {
        InterByteTimer {
            timeout,
            pending: 0,
            since: None,
        }
    }

    /// Discards the stale partial frame, if the line was quiet for longer than the timeout.
    pub(crate) fn expire(&mut self, buf: &mut BytesMut, now: Instant) -> Option<FramingError> {
        let stale = match self.since {
            Some(since) => now.saturating_duration_since(since) > self.timeout,
            None => false,
        };
        let octets = self.pending.min(buf.len());
        if stale && octets > 0 {
            buf.advance(octets);
            self.pending = 0;
            self.since = None;
            return Some(FramingError::Timeout { octets });
        }
        None
    }

    /// Records what is left when a decoder needs more bytes.
    pub(crate) fn waiting(&mut self, buf: &BytesMut, now: Instant) {
        // Only new bytes restart the clock: quiet ticks must let a partial expire.
        if buf.len() != self.pending || self.since.is_none() {
            self.since = Some(now);
        }
        self.pending = buf.len();
        if self.pending == 0 {
            self.since = None;
        }
    }

    /// Forgets the pending bytes after a decoder consumed some.
    pub(crate) fn consumed(&mut self) {
        self.pending = 0;
        self.since = None;
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Shared helpers for the framing unit tests.
    use super::*;

    /// Feeds `bytes` in one go and collects everything the decoder yields.
    pub(crate) fn decode_all(
        framing: &mut dyn Framing,
        buf: &mut BytesMut,
        bytes: &[u8],
        now: Instant,
    ) -> Vec<Result<Decoded, FramingError>> {
        buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(item) = framing.decode(buf, now) {
            out.push(item);
        }
        out
    }

    /// The datagrams among decoder results, errors dropped.
    pub(crate) fn messages(results: &[Result<Decoded, FramingError>]) -> Vec<Bytes> {
        results
            .iter()
            .filter_map(|r| match r {
                Ok(Decoded::Frame(f)) => Some(f.message.clone()),
                _ => None,
            })
            .collect()
    }

    /// A PUBLISH QoS 0 to predefined topic 1 with `data`, encoded.
    pub(crate) fn publish(data: &[u8]) -> Bytes {
        let mut b = BytesMut::new();
        let msg = crate::mqttsn::codec::Message::Publish {
            dup: false,
            qos: crate::mqttsn::codec::SnQos::Level(crate::qos::QoS::AtMostOnce),
            retain: false,
            topic: crate::mqttsn::codec::TopicRef::Predefined(1),
            msg_id: 0,
            data: Bytes::copy_from_slice(data),
        };
        crate::mqttsn::codec::encode(&msg, &mut b).unwrap();
        b.freeze()
    }

    /// A forwarder encapsulation (0xFE) of PINGREQ from node id 0xAB 0xCD.
    pub(crate) fn encapsulated() -> Bytes {
        Bytes::from_static(&[0x05, 0xFE, 0x01, 0xAB, 0xCD, 0x02, 0x16])
    }
}
