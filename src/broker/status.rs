//! A read-only snapshot of the core for the HTTP status page, `/metrics` and
//! `/api`: asked for with [`Command::Status`](super::Command::Status), built
//! by the core task between two commands, so it is consistent.

use std::sync::Arc;

use super::api::ClientKind;

/// One session as the status page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientStatus {
    /// Client identifier.
    pub client_id: Arc<str>,
    /// Protocol.
    pub kind: ClientKind,
    /// A connection is attached.
    pub connected: bool,
    /// Subscriptions held.
    pub subscriptions: usize,
    /// Deliveries waiting for the in-flight window or the connection.
    pub queued: usize,
    /// QoS 1/2 deliveries sent and not yet acknowledged.
    pub inflight: usize,
}

/// The core's state at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusSnapshot {
    /// Every session, attached or not, in client-id order.
    pub clients: Vec<ClientStatus>,
    /// Subscriptions in the tree.
    pub subscriptions: usize,
    /// Retained messages.
    pub retained: usize,
    /// PUBLISH messages received from clients.
    pub messages_received: u64,
    /// Deliveries handed to connections.
    pub messages_sent: u64,
    /// Deliveries dropped because a session queue was full.
    pub messages_dropped: u64,
    /// Most clients connected at once.
    pub clients_maximum: usize,
}
