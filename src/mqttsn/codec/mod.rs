//! Sans-IO MQTT-SN 1.2 codec: one datagram in, one typed message out, and back.
//!
//! No sockets, no clocks, no session state. Everything here is a pure function
//! over bytes so that it can be unit-tested, property-tested and fuzzed.

mod decode;
mod encode;
mod error;
mod header;
mod message;
mod msg_type;

pub use decode::{Encapsulation, decode, decode_message, split_encapsulation};
pub use encode::{encode, encode_frame, encoded_len};
pub use error::{DecodeError, EncodeError};
pub use header::{LONG_FORM_MAX, SHORT_FORM_MAX, peek_msg_type};
pub use message::*;
pub use msg_type::*;

#[cfg(test)]
mod tests;
