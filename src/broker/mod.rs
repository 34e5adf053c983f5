//! The broker core: sessions, subscriptions, retained messages, QoS state,
//! wills and `$SYS`. It knows clients only as [`ConnId`]s with an [`Outbox`];
//! it never sees a socket, an MQTT packet or an MQTT-SN topic id.

pub mod api;
pub mod core;
pub mod handle;
pub mod message;
pub mod metrics;
pub mod retained;
pub mod runner;
pub mod session;
pub mod status;
pub mod subscriptions;
pub mod sys;

pub use api::*;
pub use core::{Broker, BrokerSettings};
pub use handle::{BrokerClosed, BrokerHandle};
pub use message::{Message, MessageProperties};
pub use metrics::Metrics;
pub use runner::spawn;
pub use status::{ClientStatus, StatusSnapshot};
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_v5;
