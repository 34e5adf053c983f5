//! Decode and encode errors, each tagged with the spec rule it enforces.

use thiserror::Error;

/// Why bytes from a peer could not be decoded into a packet.
///
/// Rule ids are from MQTT 5.0 unless marked; the same checks apply to 3.1.1.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The remaining length did not end within four bytes.
    #[error("§2.2.3 remaining length longer than four bytes")]
    MalformedRemainingLength,
    /// A variable byte integer inside the packet did not end within four bytes.
    #[error("§1.5.5 variable byte integer longer than four bytes")]
    MalformedVariableInteger,
    /// Packet type 0 (or 15 before MQTT 5) is reserved.
    #[error("§2.1.2 reserved control packet type {0}")]
    ReservedPacketType(u8),
    /// Reserved fixed-header flag bits had the wrong value.
    #[error("[MQTT-2.2.2-2] invalid fixed header flags for {0}")]
    InvalidFlags(&'static str),
    /// The whole packet is larger than the caller's maximum packet size.
    #[error("§4.13 packet of {size} bytes exceeds maximum packet size {max}")]
    PacketTooLarge {
        /// Total packet size including the fixed header.
        size: u64,
        /// The limit the caller passed.
        max: u32,
    },
    /// QoS value 3 in a PUBLISH fixed header.
    #[error("[MQTT-3.3.1-4] PUBLISH with QoS 3")]
    InvalidQoS,
    /// DUP flag set on a QoS 0 PUBLISH.
    #[error("[MQTT-3.3.1-2] DUP flag set on a QoS 0 PUBLISH")]
    DupWithQoS0,
    /// A string is not well-formed UTF-8.
    #[error("[MQTT-1.5.4-1] string is not well-formed UTF-8")]
    InvalidUtf8,
    /// A string contains the null character U+0000.
    #[error("[MQTT-1.5.4-2] string contains U+0000")]
    NullCharacter,
    /// A packet identifier that must be non-zero was zero.
    #[error("[MQTT-2.3.1-1] packet identifier is zero")]
    ZeroPacketId,
    /// SUBSCRIBE carried no topic filter.
    #[error("[MQTT-3.8.3-3] SUBSCRIBE without topic filters")]
    EmptySubscribe,
    /// UNSUBSCRIBE carried no topic filter.
    #[error("[MQTT-3.10.3-2] UNSUBSCRIBE without topic filters")]
    EmptyUnsubscribe,
    /// Reserved subscription option bits were set.
    #[error("[MQTT-3.8.3-5] reserved subscription option bits set")]
    InvalidSubscriptionOptions,
    /// Retain Handling 3 in the subscription options.
    #[error("§3.8.3.1 Retain Handling 3 is a protocol error")]
    InvalidRetainHandling,
    /// Requested QoS 3 in SUBSCRIBE.
    #[error("§3.8.3.1 SUBSCRIBE requests QoS 3 (3.1.1: [MQTT-3-8.3-4])")]
    InvalidSubscribeQoS,
    /// CONNECT reserved flag bit 0 set.
    #[error("[MQTT-3.1.2-3] CONNECT reserved flag is set")]
    ConnectReservedFlag,
    /// Will QoS non-zero while the will flag is 0.
    #[error("[MQTT-3.1.2-11] will QoS set without the will flag (3.1.1: [MQTT-3.1.2-13])")]
    WillQoSWithoutWill,
    /// Will retain set while the will flag is 0.
    #[error("[MQTT-3.1.2-13] will retain set without the will flag (3.1.1: [MQTT-3.1.2-15])")]
    WillRetainWithoutWill,
    /// Will QoS 3.
    #[error("[MQTT-3.1.2-12] will QoS 3 (3.1.1: [MQTT-3.1.2-14])")]
    InvalidWillQoS,
    /// MQTT 3.1/3.1.1 password flag set without the username flag.
    #[error("[MQTT-3.1.2-22] password flag set without username flag")]
    PasswordWithoutUsername,
    /// CONNECT with an unknown protocol name or level.
    #[error("[MQTT-3.1.2-2] unsupported protocol {name:?} level {level}")]
    UnsupportedProtocolVersion {
        /// The protocol name as sent.
        name: String,
        /// The protocol level as sent.
        level: u8,
    },
    /// The packet ended before a field it must contain.
    #[error("§2.2.3 remaining length too short for the packet contents")]
    UnexpectedEnd,
    /// Bytes were left over after the last field of the packet.
    #[error("§2.2.3 remaining length longer than the packet contents")]
    TrailingBytes,
    /// A v5 property appeared twice where only one is allowed.
    #[error("§2.2.2.2 property 0x{0:02X} included more than once")]
    DuplicateProperty(u8),
    /// A v5 property identifier that does not exist.
    #[error("§2.2.2.2 unknown property identifier 0x{0:02X}")]
    UnknownProperty(u8),
    /// A v5 property not allowed on this packet.
    #[error("§2.2.2.2 property 0x{id:02X} not allowed in {packet}")]
    PropertyNotAllowed {
        /// Property identifier.
        id: u8,
        /// Packet (or will) the property appeared in.
        packet: &'static str,
    },
    /// A v5 property had a value the spec forbids (e.g. Receive Maximum 0).
    #[error("§2.2.2.2 invalid value {value} for property {name}")]
    InvalidPropertyValue {
        /// Property name.
        name: &'static str,
        /// The value sent.
        value: u32,
    },
    /// The property length runs past the end of the packet.
    #[error("§2.2.2.1 property length overruns the packet")]
    PropertyLengthOverrun,
    /// A reason or return code not allowed in this packet.
    #[error("§2.4 invalid reason code 0x{code:02X} in {packet}")]
    InvalidReasonCode {
        /// The code sent.
        code: u8,
        /// Packet the code appeared in.
        packet: &'static str,
    },
    /// CONNACK acknowledge flags bits 7..1 set.
    #[error("[MQTT-3.2.2-1] CONNACK reserved acknowledge flags set")]
    ConnAckReservedFlags,
}

impl DecodeError {
    /// The MQTT 5 reason code to send in CONNACK or DISCONNECT for this error.
    pub fn reason_code(&self) -> u8 {
        match self {
            DecodeError::PacketTooLarge { .. } => 0x95,
            DecodeError::UnsupportedProtocolVersion { .. } => 0x84,
            DecodeError::DuplicateProperty(_)
            | DecodeError::InvalidPropertyValue { .. }
            | DecodeError::InvalidRetainHandling
            | DecodeError::InvalidSubscribeQoS => 0x82,
            _ => 0x81,
        }
    }
}

/// Why a packet could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The packet would exceed the 268,435,455-byte remaining length limit.
    #[error("§2.2.3 packet body of {0} bytes exceeds 268,435,455")]
    PacketTooLarge(usize),
    /// A string or binary field is longer than 65,535 bytes.
    #[error("§1.5.4 field of {0} bytes exceeds 65,535")]
    FieldTooLong(usize),
    /// A variable byte integer value above 268,435,455.
    #[error("§1.5.5 value {0} does not fit a variable byte integer")]
    VariableIntegerTooLarge(u32),
    /// QoS 1/2 PUBLISH (or an ack/subscribe) without a non-zero packet id.
    #[error("[MQTT-2.3.1-1] packet identifier missing or zero")]
    MissingPacketId,
    /// The packet type does not exist in the chosen protocol version.
    #[error("{0} does not exist in this protocol version")]
    NotInVersion(&'static str),
    /// SUBSCRIBE or UNSUBSCRIBE with no topic filters.
    #[error("[MQTT-3.8.3-3] SUBSCRIBE/UNSUBSCRIBE needs at least one topic filter")]
    NoFilters,
}
