//! MQTT 3.1.1 and 5.0: wire codec, topic rules, per-connection protocol state.

pub mod codec;
pub mod connection;
pub mod session;
pub mod topic;
