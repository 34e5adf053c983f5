//! The cloneable handle every connection, the gateway and bridges use to talk
//! to the broker core task.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::api::Command;
use super::shared_core::{Applied, SharedCore};

/// The broker core task has stopped (shutdown); the caller should close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the broker core has shut down")]
pub struct BrokerClosed;

/// How a command reached the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Applied at once, in the sender's task (the core was idle): its
    /// effects, e.g. deliveries queued and their connections woken, are done.
    Applied,
    /// Queued for the core task.
    Queued,
}

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
///
/// A handle to a core without persistence also shares the core's state
/// ([`SharedCore`]): when the core is idle, the command is applied in the
/// sender's own task instead of being queued.
#[derive(Debug, Clone)]
pub struct BrokerHandle {
    tx: mpsc::Sender<Command>,
    acks: Option<mpsc::Sender<Command>>,
    shared: Option<Arc<SharedCore>>,
}

/// What became of a command offered to the shared core.
enum Attempt {
    Applied,
    /// Counted as queued; the caller puts it on a channel.
    Queue(Command),
}

/// Keeps a queued command counted until the channel has it; a send that
/// fails or is abandoned takes the count back.
struct Counted<'a> {
    shared: Option<&'a SharedCore>,
}

impl Counted<'_> {
    fn sent(mut self) {
        self.shared = None;
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.shared {
            s.dequeued();
        }
    }
}

impl BrokerHandle {
    /// Wraps the sending half of the core's command channel.
    pub fn new(tx: mpsc::Sender<Command>) -> BrokerHandle {
        BrokerHandle {
            tx,
            acks: None,
            shared: None,
        }
    }

    /// Like [`BrokerHandle::new`], with a priority lane for acknowledgements.
    pub fn with_ack_lane(tx: mpsc::Sender<Command>, acks: mpsc::Sender<Command>) -> BrokerHandle {
        BrokerHandle {
            tx,
            acks: Some(acks),
            shared: None,
        }
    }

    /// Like [`BrokerHandle::with_ack_lane`], applying commands in the
    /// sender's task while the core is idle.
    pub fn with_shared_core(
        tx: mpsc::Sender<Command>,
        acks: mpsc::Sender<Command>,
        shared: Arc<SharedCore>,
    ) -> BrokerHandle {
        BrokerHandle {
            tx,
            acks: Some(acks),
            shared: Some(shared),
        }
    }

    /// Applies `command` now if the core is idle; otherwise gives it back,
    /// counted as queued (the caller must put it on a channel).
    fn apply_or_count(&self, command: Command) -> Result<Attempt, BrokerClosed> {
        let Some(shared) = &self.shared else {
            return Ok(Attempt::Queue(command));
        };
        match shared.try_apply(command) {
            Applied::Done => Ok(Attempt::Applied),
            Applied::Closed => Err(BrokerClosed),
            Applied::Busy(command) => {
                shared.enqueued();
                Ok(Attempt::Queue(command))
            }
        }
    }

    fn counted(&self) -> Counted<'_> {
        Counted {
            shared: self.shared.as_deref(),
        }
    }

    /// Sends one command, waiting while the core's queue is full.
    pub async fn send(&self, command: Command) -> Result<(), BrokerClosed> {
        let command = match self.apply_or_count(command)? {
            Attempt::Applied => {
                // A loop of sends that never wait would otherwise never
                // yield, where a channel send spends the task's budget.
                tokio::task::consume_budget().await;
                return Ok(());
            }
            Attempt::Queue(command) => command,
        };
        let counted = self.counted();
        self.lane(&command)
            .send(command)
            .await
            .map_err(|_| BrokerClosed)?;
        counted.sent();
        Ok(())
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

    /// Sends one command if the core is idle (applied at once, see
    /// [`SharedCore`]) or its queue has room now; gives it back otherwise,
    /// so the caller can wait in [`BrokerHandle::send`] (boxed: the waiting
    /// future is large and only the slow path needs it).
    #[allow(clippy::result_large_err)] // gives the command back, as tokio's try_send does
    pub fn try_send(&self, command: Command) -> Result<Sent, TrySendError> {
        let command = match self.apply_or_count(command) {
            Ok(Attempt::Applied) => return Ok(Sent::Applied),
            Ok(Attempt::Queue(command)) => command,
            Err(closed) => return Err(TrySendError::Closed(closed)),
        };
        self.try_queue_counted(command)
    }

    /// Like [`BrokerHandle::try_send`], but always queued for the core task:
    /// for a sender with more commands coming (a busy publisher), whose
    /// commands the core task applies in batches while the sender reads on.
    #[allow(clippy::result_large_err)]
    pub fn try_enqueue(&self, command: Command) -> Result<Sent, TrySendError> {
        if let Some(shared) = &self.shared {
            shared.enqueued();
        }
        self.try_queue_counted(command)
    }

    /// Puts an already counted command on its lane.
    #[allow(clippy::result_large_err)]
    fn try_queue_counted(&self, command: Command) -> Result<Sent, TrySendError> {
        use mpsc::error::TrySendError as E;
        let counted = self.counted();
        match self.lane(&command).try_send(command) {
            Ok(()) => {
                counted.sent();
                Ok(Sent::Queued)
            }
            // The caller will `send` it, which counts it again.
            Err(E::Full(command)) => Err(TrySendError::Full(command)),
            Err(E::Closed(_)) => Err(TrySendError::Closed(BrokerClosed)),
        }
    }

    /// True once the core has stopped.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}
