//! The broker core: sessions, subscriptions, retained messages, QoS state,
//! wills and `$SYS`. It knows clients only as [`ConnId`]s with an [`Outbox`];
//! it never sees a socket, an MQTT packet or an MQTT-SN topic id.

pub mod api;
pub mod handle;
pub mod message;

pub use api::*;
pub use handle::{BrokerClosed, BrokerHandle};
pub use message::{Message, MessageProperties};
