//! The cloneable handle every connection, the gateway and bridges use to talk
//! to the broker core task.

use tokio::sync::mpsc;

use super::api::Command;

/// The broker core task has stopped (shutdown); the caller should close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the broker core has shut down")]
pub struct BrokerClosed;

/// Why [`BrokerHandle::try_send`] did not send.
#[derive(Debug)]
pub enum TrySendError {
    /// The core's queue is full; the command is given back.
    Full(Command),
    /// The core has stopped.
    Closed(BrokerClosed),
}

/// Sends commands to the broker core. The channel is bounded: a publisher that
/// outruns the core waits here, which is how back-pressure reaches its socket.
///
/// Acknowledgements of deliveries (PUBACK, PUBREC, PUBCOMP) may travel on a
/// lane of their own that the core serves first: they free a subscriber's
/// in-flight window, so queueing them behind thousands of publishes would
/// throttle the subscriber and, through it, every publisher.
#[derive(Debug, Clone)]
pub struct BrokerHandle {
    tx: mpsc::Sender<Command>,
    acks: Option<mpsc::Sender<Command>>,
}

impl BrokerHandle {
    /// Wraps the sending half of the core's command channel.
    pub fn new(tx: mpsc::Sender<Command>) -> BrokerHandle {
        BrokerHandle { tx, acks: None }
    }

    /// Like [`BrokerHandle::new`], with a priority lane for acknowledgements.
    pub fn with_ack_lane(tx: mpsc::Sender<Command>, acks: mpsc::Sender<Command>) -> BrokerHandle {
        BrokerHandle {
            tx,
            acks: Some(acks),
        }
    }

    /// Sends one command, waiting while the core's queue is full.
    pub async fn send(&self, command: Command) -> Result<(), BrokerClosed> {
        self.lane(&command)
            .send(command)
            .await
            .map_err(|_| BrokerClosed)
    }

    fn lane(&self, command: &Command) -> &mpsc::Sender<Command> {
        match (&self.acks, command) {
            // PUBREL stays in order with the client's own QoS 2 PUBLISH: it
            // must not overtake it [MQTT-4.3.3-2].
            (
                Some(acks),
                Command::PubAck { .. } | Command::PubRec { .. } | Command::PubComp { .. },
            ) => acks,
            _ => &self.tx,
        }
    }

    /// Sends one command if the core's queue has room now; gives it back
    /// otherwise, so the caller can wait in [`BrokerHandle::send`] (boxed:
    /// the waiting future is large and only the slow path needs it).
    #[allow(clippy::result_large_err)] // gives the command back, as tokio's try_send does
    pub fn try_send(&self, command: Command) -> Result<(), TrySendError> {
        use mpsc::error::TrySendError as E;
        match self.lane(&command).try_send(command) {
            Ok(()) => Ok(()),
            Err(E::Full(command)) => Err(TrySendError::Full(command)),
            Err(E::Closed(_)) => Err(TrySendError::Closed(BrokerClosed)),
        }
    }

    /// True once the core has stopped.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}
