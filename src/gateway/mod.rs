//! The MQTT-SN gateway: per-sensor sessions, topic-id tables, discovery.
//!
//! [`Gateway`] is sans-IO (in the style of quinn-proto): datagrams, broker
//! events and the current time go in; datagrams and broker commands come out.
//! [`driver`] runs it on UDP sockets with tokio.

pub mod access;
pub mod address;
mod connect;
pub mod discovery;
mod dispatch;
pub mod driver;
#[allow(clippy::module_inception)]
mod gateway;
pub mod identity;
mod inbound;
mod outbound;
pub mod retransmit;
pub mod session;
pub mod settings;
pub mod sleep_buffer;
pub mod status;
mod timers;
pub mod topic_registry;

pub use access::{Admission, DatagramGate, GatewayAccess, ListenerPolicy, SensorAccess};
pub use address::{PeerAddr, SensorAddr};
pub use driver::{
    GatewayError, GatewayExtras, GatewayReload, SerialTransport, bind_udp, run_gateway,
    run_gateway_full, run_gateway_on, run_gateway_with,
};
pub use gateway::{Gateway, GatewayStats, Transmit};
pub use identity::PeerIdentity;
pub use settings::{GatewaySettings, PredefinedTopic};
pub use status::{GatewayStatus, SensorState, SensorStatus};

#[cfg(test)]
mod tests;
