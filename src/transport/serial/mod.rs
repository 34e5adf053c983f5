//! Serial radios: a framing turns the byte stream into MQTT-SN datagrams, and
//! the link keeps the device open across unplugging.

pub mod framing;
pub mod port;
