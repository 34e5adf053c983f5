//! The Length/MsgType header in its 1- and 3-octet length forms (digest §2.1).

use super::error::DecodeError;
use super::msg_type::LONG_FORM_MARKER;

/// Largest total that uses the 1-octet Length form when we encode (G-03).
pub const SHORT_FORM_MAX: usize = 255;

/// Largest total the 3-octet Length form can carry.
pub const LONG_FORM_MAX: usize = u16::MAX as usize;

/// A parsed header: where the variable part starts and how long the message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// Total message length as declared by the Length field.
    pub(crate) total: usize,
    /// 2 (short form) or 4 (long form).
    pub(crate) header_len: usize,
    /// The MsgType octet.
    pub(crate) msg_type: u8,
}

/// Reads the header without checking the total against the datagram size.
pub(crate) fn parse_header(datagram: &[u8]) -> Result<Header, DecodeError> {
    match datagram {
        [] => Err(DecodeError::Empty),
        [0x00, ..] => Err(DecodeError::ZeroLength),
        // MQTT-SN 1.2 §5.2.1, G-01: 0x01 announces a 16-bit big-endian total.
        [LONG_FORM_MARKER, hi, lo, msg_type, ..] => {
            let declared = u16::from_be_bytes([*hi, *lo]);
            if declared < 4 {
                return Err(DecodeError::LongFormTooSmall { declared });
            }
            Ok(Header {
                total: usize::from(declared),
                header_len: 4,
                msg_type: *msg_type,
            })
        }
        [LONG_FORM_MARKER, ..] | [_] => Err(DecodeError::TruncatedHeader {
            actual: datagram.len(),
        }),
        [len, msg_type, ..] => Ok(Header {
            total: usize::from(*len),
            header_len: 2,
            msg_type: *msg_type,
        }),
    }
}

/// The MsgType octet of a datagram, read through either length form.
///
/// Needs no valid Length beyond its form, so the gateway can pick a reply (or
/// decide to stay silent) for a datagram that [`decode`](super::decode) rejected.
/// For a forwarder encapsulation this is 0xFE, not the inner type.
pub fn peek_msg_type(datagram: &[u8]) -> Option<u8> {
    match datagram {
        [0x00, ..] => None,
        [LONG_FORM_MARKER, rest @ ..] => rest.get(2).copied(),
        [_, msg_type, ..] => Some(*msg_type),
        _ => None,
    }
}

/// Total length of a message whose variable part has `body_len` octets (G-03).
pub(crate) fn total_len(body_len: usize) -> usize {
    if body_len + 2 <= SHORT_FORM_MAX {
        body_len + 2
    } else {
        body_len + 4
    }
}
