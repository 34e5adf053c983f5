//! Sans-IO MQTT-SN 1.2 codec: one datagram in, one typed message out, and back.
//!
//! No sockets, no clocks, no session state. Everything here is a pure function
//! over bytes so that it can be unit-tested, property-tested and fuzzed.

mod message;

pub use message::*;
