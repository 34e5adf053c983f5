//! The cloneable handle every connection, the gateway and bridges use to talk
//! to the broker core task.

use tokio::sync::mpsc;

use super::api::Command;

/// The broker core task has stopped (shutdown); the caller should close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the broker core has shut down")]
pub struct BrokerClosed;

/// Sends commands to the broker core. The channel is bounded: a publisher that
/// outruns the core waits here, which is how back-pressure reaches its socket.
#[derive(Debug, Clone)]
pub struct BrokerHandle {
    tx: mpsc::Sender<Command>,
}

impl BrokerHandle {
    /// Wraps the sending half of the core's command channel.
    pub fn new(tx: mpsc::Sender<Command>) -> BrokerHandle {
        BrokerHandle { tx }
    }

    /// Sends one command, waiting while the core's queue is full.
    pub async fn send(&self, command: Command) -> Result<(), BrokerClosed> {
        self.tx.send(command).await.map_err(|_| BrokerClosed)
    }

    /// True once the core has stopped.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}
