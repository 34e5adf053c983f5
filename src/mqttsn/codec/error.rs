//! Why a datagram could not be decoded or a message could not be encoded.
//!
//! Every variant names the rule it enforces so that a log line is enough to
//! find the spec text. All of them mean "drop silently" (digest §5.23) unless
//! the variant's doc says the gateway can still answer.

use thiserror::Error;

/// A datagram that is not a well-formed MQTT-SN 1.2 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The datagram holds no octet at all.
    #[error("MQTT-SN 1.2 §5.2: empty datagram")]
    Empty,
    /// The datagram ends inside the Length/MsgType header.
    #[error("MQTT-SN 1.2 §5.2: datagram of {actual} octets ends inside the header")]
    TruncatedHeader {
        /// Octets received.
        actual: usize,
    },
    /// A first octet of 0x00 is not a valid length.
    #[error("MQTT-SN 1.2 §5.2.1: length octet 0x00 is invalid")]
    ZeroLength,
    /// A long-form (0x01 + u16) length below the 4-octet long-form header.
    #[error("MQTT-SN 1.2 §5.2.1: long-form length {declared} is shorter than its own header")]
    LongFormTooSmall {
        /// The 16-bit value found.
        declared: u16,
    },
    /// The Length field disagrees with the number of octets received.
    #[error("MQTT-SN 1.2 §5.2.1: length {declared} differs from datagram size {actual} (G-04)")]
    LengthMismatch {
        /// Total length announced by the Length field.
        declared: usize,
        /// Octets received.
        actual: usize,
    },
    /// MsgType 0x03, 0x11, 0x19, 0x1E–0xFD or 0xFF.
    #[error("MQTT-SN 1.2 §5.2.2: reserved message type {0:#04x} (G-05)")]
    ReservedType(u8),
    /// The message is shorter than the fixed part of its type.
    ///
    /// Sizes count the variable part only (after MsgType), so they read the same
    /// for both length forms.
    #[error(
        "MQTT-SN 1.2 §5.4: message type {msg_type:#04x} needs a variable part of at least {min} octets, got {actual} (G-06)"
    )]
    Truncated {
        /// The MsgType octet (0xFE for a forwarder encapsulation).
        msg_type: u8,
        /// Minimum variable-part length for this type.
        min: usize,
        /// Variable-part length received.
        actual: usize,
    },
    /// A type with fixed sizes arrived with another size, e.g. DISCONNECT with a
    /// variable part other than 0 or 2 octets, or a 0b01 SUBSCRIBE whose id is not
    /// exactly 2 octets.
    ///
    /// Sizes count the variable part only (after MsgType).
    #[error(
        "MQTT-SN 1.2 §5.4: message type {msg_type:#04x} needs a variable part of {expected} octets, got {actual}"
    )]
    InvalidSize {
        /// The MsgType octet.
        msg_type: u8,
        /// The allowed variable-part lengths, for humans.
        expected: &'static str,
        /// Variable-part length received.
        actual: usize,
    },
    /// TopicIdType 0b11 in PUBLISH, SUBSCRIBE or UNSUBSCRIBE.
    ///
    /// The gateway still answers these (digest §5.2, G-45, G-59): the fields it
    /// needs for the reply are kept here.
    #[error(
        "MQTT-SN 1.2 §5.3.4: reserved TopicIdType 0b11 in message type {msg_type:#04x} (G-45, G-59)"
    )]
    ReservedTopicIdType {
        /// The MsgType octet (PUBLISH, SUBSCRIBE or UNSUBSCRIBE).
        msg_type: u8,
        /// The whole Flags octet (QoS bits tell a QoS −1 PUBLISH, which is dropped).
        flags: u8,
        /// The two octets where a topic id would be: PUBLISH offsets 3–4; 0 otherwise.
        topic_id: u16,
        /// The MsgId.
        msg_id: u16,
    },
    /// QoS bits 0b11 (QoS −1) outside a PUBLISH.
    ///
    /// A SUBSCRIBE gets SUBACK 0x03 and a Will CONNACK/WILLTOPICRESP 0x03
    /// (digest §5.9), so the MsgId is kept when the message has one.
    #[error(
        "MQTT-SN 1.2 §5.3.4: QoS -1 is only allowed in PUBLISH, found in message type {msg_type:#04x}"
    )]
    QosMinusOneNotAllowed {
        /// The MsgType octet.
        msg_type: u8,
        /// The MsgId, for SUBSCRIBE.
        msg_id: Option<u16>,
    },
    /// A forwarder encapsulation inside a forwarder encapsulation, or where a plain
    /// message is expected.
    #[error("MQTT-SN 1.2 §5.5: nested forwarder encapsulation")]
    NestedEncapsulation,
    /// A forwarder encapsulation with a 3-octet Length (its Length is always 1 octet).
    #[error("MQTT-SN 1.2 §5.5: forwarder encapsulation with a long-form length")]
    LongFormEncapsulation,
}

/// A message that cannot be put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The total length exceeds the 16-bit Length field.
    #[error("MQTT-SN 1.2 §5.2.1: message of {len} octets exceeds 65535")]
    TooLong {
        /// Total length the message would have.
        len: usize,
    },
    /// A Wireless Node Id too long for the 1-octet encapsulation Length.
    #[error("MQTT-SN 1.2 §5.5: encapsulation header of {len} octets exceeds 255")]
    NodeIdTooLong {
        /// Header length (3 + node id length) the encapsulation would have.
        len: usize,
    },
}
