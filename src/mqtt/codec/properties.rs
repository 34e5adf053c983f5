//! MQTT 5 properties (§2.2.2): the identifier table, which packet may carry
//! which property, the at-most-once rule, and reading/writing a property
//! section. The per-packet property structs live in `property_sets.rs`.

use bytes::Bytes;

use super::error::{DecodeError, EncodeError};
use super::wire::{self, Counter, Reader, Sink};

pub use super::property_sets::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, SubscribeProperties, UnsubscribeProperties, WillProperties,
};

/// A user property: a UTF-8 name/value pair; order and repeats are kept.
pub type UserProperty = (String, String);

/// Property identifiers (§2.2.2.2 table 2-4).
pub mod id {
    /// Payload Format Indicator (byte).
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    /// Message Expiry Interval (four byte integer).
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    /// Content Type (UTF-8 string).
    pub const CONTENT_TYPE: u8 = 0x03;
    /// Response Topic (UTF-8 string).
    pub const RESPONSE_TOPIC: u8 = 0x08;
    /// Correlation Data (binary).
    pub const CORRELATION_DATA: u8 = 0x09;
    /// Subscription Identifier (variable byte integer).
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    /// Session Expiry Interval (four byte integer).
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    /// Assigned Client Identifier (UTF-8 string).
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    /// Server Keep Alive (two byte integer).
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    /// Authentication Method (UTF-8 string).
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    /// Authentication Data (binary).
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    /// Request Problem Information (byte).
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    /// Will Delay Interval (four byte integer).
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    /// Request Response Information (byte).
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    /// Response Information (UTF-8 string).
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    /// Server Reference (UTF-8 string).
    pub const SERVER_REFERENCE: u8 = 0x1C;
    /// Reason String (UTF-8 string).
    pub const REASON_STRING: u8 = 0x1F;
    /// Receive Maximum (two byte integer).
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    /// Topic Alias Maximum (two byte integer).
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    /// Topic Alias (two byte integer).
    pub const TOPIC_ALIAS: u8 = 0x23;
    /// Maximum QoS (byte).
    pub const MAXIMUM_QOS: u8 = 0x24;
    /// Retain Available (byte).
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    /// User Property (UTF-8 string pair).
    pub const USER_PROPERTY: u8 = 0x26;
    /// Maximum Packet Size (four byte integer).
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    /// Wildcard Subscription Available (byte).
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    /// Subscription Identifier Available (byte).
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    /// Shared Subscription Available (byte).
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

/// Wire data type of a property value (§1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PropType {
    Byte,
    TwoByte,
    FourByte,
    VarInt,
    Utf8,
    Binary,
    Pair,
}

/// Where a property section appears; decides which identifiers are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PropContext {
    Connect,
    Will,
    ConnAck,
    Publish,
    /// PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK.
    Ack,
    Subscribe,
    Unsubscribe,
    Disconnect,
    Auth,
}

impl PropContext {
    pub(crate) fn name(self) -> &'static str {
        match self {
            PropContext::Connect => "CONNECT",
            PropContext::Will => "will properties",
            PropContext::ConnAck => "CONNACK",
            PropContext::Publish => "PUBLISH",
            PropContext::Ack => "acknowledgement",
            PropContext::Subscribe => "SUBSCRIBE",
            PropContext::Unsubscribe => "UNSUBSCRIBE",
            PropContext::Disconnect => "DISCONNECT",
            PropContext::Auth => "AUTH",
        }
    }
}

/// Data type of a property identifier; `None` for identifiers that do not exist.
pub(crate) fn prop_type(pid: u8) -> Option<PropType> {
    use PropType::*;
    use id::*;
    Some(match pid {
        PAYLOAD_FORMAT_INDICATOR
        | REQUEST_PROBLEM_INFORMATION
        | REQUEST_RESPONSE_INFORMATION
        | MAXIMUM_QOS
        | RETAIN_AVAILABLE
        | WILDCARD_SUBSCRIPTION_AVAILABLE
        | SUBSCRIPTION_IDENTIFIER_AVAILABLE
        | SHARED_SUBSCRIPTION_AVAILABLE => Byte,
        SERVER_KEEP_ALIVE | RECEIVE_MAXIMUM | TOPIC_ALIAS_MAXIMUM | TOPIC_ALIAS => TwoByte,
        MESSAGE_EXPIRY_INTERVAL
        | SESSION_EXPIRY_INTERVAL
        | WILL_DELAY_INTERVAL
        | MAXIMUM_PACKET_SIZE => FourByte,
        SUBSCRIPTION_IDENTIFIER => VarInt,
        CONTENT_TYPE
        | RESPONSE_TOPIC
        | ASSIGNED_CLIENT_IDENTIFIER
        | AUTHENTICATION_METHOD
        | RESPONSE_INFORMATION
        | SERVER_REFERENCE
        | REASON_STRING => Utf8,
        CORRELATION_DATA | AUTHENTICATION_DATA => Binary,
        USER_PROPERTY => Pair,
        _ => return None,
    })
}

/// True when §2.2.2.2 table 2-4 lists `pid` for `ctx`.
pub(crate) fn allowed(pid: u8, ctx: PropContext) -> bool {
    use PropContext as C;
    use id::*;
    if pid == USER_PROPERTY {
        return true;
    }
    match pid {
        PAYLOAD_FORMAT_INDICATOR
        | MESSAGE_EXPIRY_INTERVAL
        | CONTENT_TYPE
        | RESPONSE_TOPIC
        | CORRELATION_DATA => matches!(ctx, C::Publish | C::Will),
        SUBSCRIPTION_IDENTIFIER => matches!(ctx, C::Publish | C::Subscribe),
        SESSION_EXPIRY_INTERVAL => matches!(ctx, C::Connect | C::ConnAck | C::Disconnect),
        ASSIGNED_CLIENT_IDENTIFIER
        | SERVER_KEEP_ALIVE
        | RESPONSE_INFORMATION
        | MAXIMUM_QOS
        | RETAIN_AVAILABLE
        | WILDCARD_SUBSCRIPTION_AVAILABLE
        | SUBSCRIPTION_IDENTIFIER_AVAILABLE
        | SHARED_SUBSCRIPTION_AVAILABLE => ctx == C::ConnAck,
        AUTHENTICATION_METHOD | AUTHENTICATION_DATA => {
            matches!(ctx, C::Connect | C::ConnAck | C::Auth)
        }
        REQUEST_PROBLEM_INFORMATION | REQUEST_RESPONSE_INFORMATION => ctx == C::Connect,
        WILL_DELAY_INTERVAL => ctx == C::Will,
        SERVER_REFERENCE => matches!(ctx, C::ConnAck | C::Disconnect),
        REASON_STRING => matches!(ctx, C::ConnAck | C::Ack | C::Disconnect | C::Auth),
        RECEIVE_MAXIMUM | TOPIC_ALIAS_MAXIMUM | MAXIMUM_PACKET_SIZE => {
            matches!(ctx, C::Connect | C::ConnAck)
        }
        TOPIC_ALIAS => ctx == C::Publish,
        _ => false,
    }
}

/// True when `pid` may repeat in `ctx`: User Property anywhere, Subscription
/// Identifier only in PUBLISH (§3.3.2.3.8); everything else at most once.
pub(crate) fn may_repeat(pid: u8, ctx: PropContext) -> bool {
    pid == id::USER_PROPERTY || (pid == id::SUBSCRIPTION_IDENTIFIER && ctx == PropContext::Publish)
}

/// A decoded property value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PropValue {
    Byte(u8),
    TwoByte(u16),
    FourByte(u32),
    VarInt(u32),
    Utf8(String),
    Binary(Bytes),
    Pair(String, String),
}

/// Per-packet property struct: accepts decoded values and writes itself.
pub(crate) trait PropertySet {
    /// Stores one (already type-checked, allowed, non-duplicate) property.
    fn set(&mut self, pid: u8, value: PropValue) -> Result<(), DecodeError>;
    /// Writes every present property (without the length prefix).
    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError>;
}

/// Reads a property section (length + properties) into `set`.
pub(crate) fn read_properties<P: PropertySet + Default>(
    r: &mut Reader,
    ctx: PropContext,
) -> Result<P, DecodeError> {
    let len = r.var_int()?;
    let len = usize::try_from(len).map_err(|_| DecodeError::PropertyLengthOverrun)?;
    if len > r.remaining() {
        return Err(DecodeError::PropertyLengthOverrun);
    }
    let mut section = Reader::new(r.take(len)?);
    let mut seen: u64 = 0;
    let mut props = P::default();
    while !section.is_empty() {
        // Identifiers are variable byte integers, but all defined ones fit in one byte.
        let raw = section.var_int()?;
        let pid = u8::try_from(raw).map_err(|_| DecodeError::UnknownProperty(0xFF))?;
        let ty = prop_type(pid).ok_or(DecodeError::UnknownProperty(pid))?;
        if !allowed(pid, ctx) {
            return Err(DecodeError::PropertyNotAllowed {
                id: pid,
                packet: ctx.name(),
            });
        }
        let bit = 1u64 << (pid & 0x3F);
        if seen & bit != 0 && !may_repeat(pid, ctx) {
            return Err(DecodeError::DuplicateProperty(pid));
        }
        seen |= bit;
        let value = match ty {
            PropType::Byte => PropValue::Byte(section.u8()?),
            PropType::TwoByte => PropValue::TwoByte(section.u16()?),
            PropType::FourByte => PropValue::FourByte(section.u32()?),
            PropType::VarInt => PropValue::VarInt(section.var_int()?),
            PropType::Utf8 => PropValue::Utf8(section.utf8()?),
            PropType::Binary => PropValue::Binary(section.binary()?),
            PropType::Pair => {
                let k = section.utf8()?;
                PropValue::Pair(k, section.utf8()?)
            }
        };
        props.set(pid, value)?;
    }
    Ok(props)
}

/// Byte length of the properties of `p` (without the length prefix).
pub(crate) fn properties_len<P: PropertySet>(p: &P) -> Result<usize, EncodeError> {
    let mut c = Counter::default();
    p.write(&mut c)?;
    Ok(c.0)
}

/// Writes a property section: length prefix then properties.
pub(crate) fn write_properties<P: PropertySet, S: Sink>(
    p: &P,
    s: &mut S,
) -> Result<(), EncodeError> {
    let len = properties_len(p)?;
    let len = u32::try_from(len).map_err(|_| EncodeError::PacketTooLarge(len))?;
    wire::put_var_int(s, len)?;
    p.write(s)
}

/// Writes single properties; `None` values are skipped.
pub(crate) struct PropWriter<'a, S: Sink>(pub(crate) &'a mut S);

impl<S: Sink> PropWriter<'_, S> {
    pub(crate) fn byte(&mut self, pid: u8, v: Option<u8>) {
        if let Some(v) = v {
            wire::put_u8(self.0, pid);
            wire::put_u8(self.0, v);
        }
    }

    pub(crate) fn flag(&mut self, pid: u8, v: Option<bool>) {
        self.byte(pid, v.map(u8::from));
    }

    pub(crate) fn two(&mut self, pid: u8, v: Option<u16>) {
        if let Some(v) = v {
            wire::put_u8(self.0, pid);
            wire::put_u16(self.0, v);
        }
    }

    pub(crate) fn four(&mut self, pid: u8, v: Option<u32>) {
        if let Some(v) = v {
            wire::put_u8(self.0, pid);
            wire::put_u32(self.0, v);
        }
    }

    pub(crate) fn var_int(&mut self, pid: u8, v: Option<u32>) -> Result<(), EncodeError> {
        if let Some(v) = v {
            wire::put_u8(self.0, pid);
            wire::put_var_int(self.0, v)?;
        }
        Ok(())
    }

    pub(crate) fn utf8(&mut self, pid: u8, v: Option<&str>) -> Result<(), EncodeError> {
        if let Some(v) = v {
            wire::put_u8(self.0, pid);
            wire::put_utf8(self.0, v)?;
        }
        Ok(())
    }

    pub(crate) fn binary(&mut self, pid: u8, v: Option<&Bytes>) -> Result<(), EncodeError> {
        if let Some(v) = v {
            wire::put_u8(self.0, pid);
            wire::put_binary(self.0, v)?;
        }
        Ok(())
    }

    pub(crate) fn user(&mut self, v: &[UserProperty]) -> Result<(), EncodeError> {
        for (k, val) in v {
            wire::put_u8(self.0, id::USER_PROPERTY);
            wire::put_utf8(self.0, k)?;
            wire::put_utf8(self.0, val)?;
        }
        Ok(())
    }
}
