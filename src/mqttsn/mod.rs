//! MQTT-SN 1.2: the wire format only. Sessions live in `crate::gateway`.

pub mod codec;
