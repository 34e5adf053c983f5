//! The fixed header (§2.1): packet type, flags and the remaining length.

use super::error::{DecodeError, EncodeError};
use super::packet::ProtocolVersion;
use super::wire::{self, MAX_VARIABLE_INT};

/// Largest remaining length a packet may declare (§2.2.3).
pub const MAX_REMAINING_LENGTH: u32 = MAX_VARIABLE_INT;

/// Control packet type values (§2.1.2).
pub(crate) mod kind {
    pub(crate) const CONNECT: u8 = 1;
    pub(crate) const CONNACK: u8 = 2;
    pub(crate) const PUBLISH: u8 = 3;
    pub(crate) const PUBACK: u8 = 4;
    pub(crate) const PUBREC: u8 = 5;
    pub(crate) const PUBREL: u8 = 6;
    pub(crate) const PUBCOMP: u8 = 7;
    pub(crate) const SUBSCRIBE: u8 = 8;
    pub(crate) const SUBACK: u8 = 9;
    pub(crate) const UNSUBSCRIBE: u8 = 10;
    pub(crate) const UNSUBACK: u8 = 11;
    pub(crate) const PINGREQ: u8 = 12;
    pub(crate) const PINGRESP: u8 = 13;
    pub(crate) const DISCONNECT: u8 = 14;
    pub(crate) const AUTH: u8 = 15;
}

/// A parsed fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    /// First byte: packet type (high nibble) and flags (low nibble).
    pub byte1: u8,
    /// Remaining length: bytes after the fixed header.
    pub remaining_length: u32,
    /// Size of the fixed header itself (2..=5).
    pub header_len: usize,
}

impl FixedHeader {
    /// Packet type (high nibble).
    pub fn packet_type(&self) -> u8 {
        self.byte1 >> 4
    }

    /// Flags (low nibble).
    pub fn flags(&self) -> u8 {
        self.byte1 & 0x0F
    }

    /// Header plus body length.
    pub fn total_len(&self) -> u64 {
        self.header_len as u64 + u64::from(self.remaining_length)
    }
}

/// Parses a fixed header from the start of `buf`; `Ok(None)` if more bytes are needed.
/// A fifth length byte is malformed even before it arrives (§2.2.3).
pub fn parse_fixed_header(buf: &[u8]) -> Result<Option<FixedHeader>, DecodeError> {
    let Some(&byte1) = buf.first() else {
        return Ok(None);
    };
    let mut value = 0u32;
    for i in 0..4 {
        let Some(&b) = buf.get(1 + i) else {
            return Ok(None);
        };
        value |= u32::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some(FixedHeader {
                byte1,
                remaining_length: value,
                header_len: 2 + i,
            }));
        }
    }
    Err(DecodeError::MalformedRemainingLength)
}

/// Checks the packet type exists in `version` and its reserved flags (§2.2.2, [MQTT-2.2.2-2]).
pub(crate) fn check_flags(byte1: u8, version: ProtocolVersion) -> Result<(), DecodeError> {
    let flags = byte1 & 0x0F;
    let (name, expected) = match byte1 >> 4 {
        kind::CONNECT => ("CONNECT", 0),
        kind::CONNACK => ("CONNACK", 0),
        kind::PUBLISH => {
            let qos = (flags >> 1) & 0x03;
            if qos == 3 {
                return Err(DecodeError::InvalidQoS);
            }
            if qos == 0 && flags & 0x08 != 0 {
                return Err(DecodeError::DupWithQoS0);
            }
            return Ok(());
        }
        kind::PUBACK => ("PUBACK", 0),
        kind::PUBREC => ("PUBREC", 0),
        kind::PUBREL => ("PUBREL", 2),
        kind::PUBCOMP => ("PUBCOMP", 0),
        kind::SUBSCRIBE => ("SUBSCRIBE", 2),
        kind::SUBACK => ("SUBACK", 0),
        kind::UNSUBSCRIBE => ("UNSUBSCRIBE", 2),
        kind::UNSUBACK => ("UNSUBACK", 0),
        kind::PINGREQ => ("PINGREQ", 0),
        kind::PINGRESP => ("PINGRESP", 0),
        kind::DISCONNECT => ("DISCONNECT", 0),
        kind::AUTH if version.is_v5() => ("AUTH", 0),
        other => return Err(DecodeError::ReservedPacketType(other)),
    };
    if flags != expected {
        return Err(DecodeError::InvalidFlags(name));
    }
    Ok(())
}

/// Writes a fixed header into `out`, returning the number of bytes used.
pub fn encode_fixed_header(
    byte1: u8,
    remaining_length: usize,
    out: &mut [u8; 5],
) -> Result<usize, EncodeError> {
    let len = u32::try_from(remaining_length)
        .ok()
        .filter(|l| *l <= MAX_REMAINING_LENGTH)
        .ok_or(EncodeError::PacketTooLarge(remaining_length))?;
    let mut tmp = [0u8; 4];
    let n = wire::encode_var_int(len, &mut tmp);
    out[0] = byte1;
    out[1..=n].copy_from_slice(&tmp[..n]);
    Ok(1 + n)
}
