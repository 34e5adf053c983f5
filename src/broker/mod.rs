//! The broker core: sessions, subscriptions, retained messages, QoS state,
//! wills and `$SYS`. It knows clients only as [`ConnId`]s with an [`Outbox`];
//! it never sees a socket, an MQTT packet or an MQTT-SN topic id.

pub mod api;
pub mod compact;
pub mod core;
mod counter_map;
pub mod handle;
mod lifecycle;
pub mod message;
pub mod metrics;
pub mod out;
pub mod outbox;
pub mod persist;
pub mod restore;
pub mod retained;
pub mod routing;
pub mod runner;
pub mod session;
pub mod shared_core;
pub mod status;
mod subscribe;
pub mod subscriptions;
pub mod sys;

pub use api::*;
pub use core::{Broker, BrokerSettings};
pub use handle::{BrokerClosed, BrokerHandle, Sent, TrySendError};
pub use message::{Message, MessageProperties};
pub use metrics::Metrics;
pub use runner::{Persistence, SyncPolicy, spawn, spawn_with};
pub use session::SessionLimits;
pub use status::{ClientStatus, StatusSnapshot};
#[cfg(test)]
mod test_client;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_persist;
#[cfg(test)]
mod tests_pressure;
#[cfg(test)]
mod tests_v5;
#[cfg(test)]
mod tests_wake_order;
