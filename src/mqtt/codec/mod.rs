//! MQTT 3.1 / 3.1.1 / 5.0 wire codec (sans-IO): bytes in, typed packets out,
//! and back. It checks everything that is purely syntactic (fixed header
//! flags, lengths, UTF-8, property placement and values); topic rules,
//! topic alias ranges and other session state are checked elsewhere.

mod decode;
mod encode;
mod error;
mod fixed_header;
mod packet;
mod properties;
mod property_sets;
mod reason;
mod wire;

#[cfg(test)]
mod tests;

pub use decode::{decode_packet, peek_connect_version};
pub use encode::{encode_packet, encoded_len};
pub use error::{DecodeError, EncodeError};
pub use fixed_header::{
    FixedHeader, MAX_REMAINING_LENGTH, encode_fixed_header, parse_fixed_header,
};
pub use packet::{
    Auth, ConnAck, Connect, Disconnect, LastWill, Packet, ProtocolVersion, PubResponse, Publish,
    RetainHandling, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};
pub use properties::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, SubscribeProperties, UnsubscribeProperties, UserProperty, WillProperties,
    id as property_id,
};
pub use reason::{ConnectReturnCode, ReasonCode, ReasonContext};
