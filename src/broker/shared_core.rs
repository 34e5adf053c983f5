//! The core's state behind a lock, shared by the core task and the handles
//! of the tasks that send it commands.
//!
//! The core task still applies everything that arrives on its channels, in
//! order, and runs the timers. What the lock adds is a short cut: a sender
//! that finds the core idle (the lock free and no command of anyone's still
//! waiting in the channels) applies its command itself, in its own task, as
//! Mosquitto handles a packet in the loop that read it. A message then
//! crosses one task switch (publisher -> subscriber) instead of two
//! (publisher -> core -> subscriber), and no channel. Only without
//! persistence: with it, every batch ends in a store commit the core task
//! awaits, and what it produced is held until then.
//!
//! Order is kept because a command only takes the short cut when nothing is
//! queued: `queued` counts commands sent on the channels and not yet applied,
//! and the core task lowers it only after applying one, under the lock. So a
//! client whose earlier command still waits in the channel sends the next
//! one there too, behind it.
//!
//! Whether to offer a command at all is the sender's choice: an MQTT
//! connection does so only for packets from a short read (an idle client)
//! and queues a busy one's (`BrokerHandle::try_enqueue`), because a hundred
//! flooding publishers each routing their own packets left the subscriber
//! too few turns (fan-in at QoS 0 fell from 420,000 to 14,000 msg/s).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::Instant;

use tracing::Span;

use super::api::Command;
use super::core::Broker;

/// A root span for the core's log lines (error level, so that it is on
/// whenever anything is logged, and without a parent, so that the sender's
/// span does not show through).
pub fn core_span() -> Span {
    tracing::error_span!(parent: None, "core")
}

/// The broker and whether it has shut down, behind the lock.
#[derive(Debug)]
pub struct CoreState {
    /// The broker itself.
    pub broker: Broker,
    /// Set by the core task once it has said goodbye to every client: from
    /// then on nothing is applied.
    pub closed: bool,
}

/// The lock around the core state and the count of commands queued for it.
#[derive(Debug)]
pub struct SharedCore {
    state: Mutex<CoreState>,
    queued: AtomicUsize,
    /// The core's log span, entered wherever a command is applied: what the
    /// core logs about one client must not carry the span (and client id)
    /// of the connection whose task happened to apply the command.
    span: Span,
}

/// What [`SharedCore::try_apply`] did with a command.
#[derive(Debug)]
pub enum Applied {
    /// Applied in the caller's task.
    Done,
    /// The core is busy (locked, or commands are queued): send it the
    /// command on the channel.
    Busy(Command),
    /// The core has shut down.
    Closed,
}

impl SharedCore {
    /// Wraps the broker the core task and the handles will share.
    pub fn new(broker: Broker) -> SharedCore {
        SharedCore {
            state: Mutex::new(CoreState {
                broker,
                closed: false,
            }),
            queued: AtomicUsize::new(0),
            span: core_span(),
        }
    }

    /// The span the core task runs in.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// Applies `command` now if the core is idle; never waits for the lock.
    pub fn try_apply(&self, command: Command) -> Applied {
        let mut state = match self.state.try_lock() {
            Ok(state) => state,
            Err(TryLockError::WouldBlock) => return Applied::Busy(command),
            // A panic while applying a command: the core is gone, as it
            // would be had the core task itself panicked.
            Err(TryLockError::Poisoned(_)) => return Applied::Closed,
        };
        if state.closed {
            return Applied::Closed;
        }
        // Under the lock: the core task lowers the count under it too, so
        // zero here means every command sent earlier has been applied.
        if self.queued.load(Ordering::Acquire) != 0 {
            return Applied::Busy(command);
        }
        let _core = self.span.enter();
        state.broker.handle(command, Instant::now());
        Applied::Done
    }

    /// Counts a command about to be sent on a channel.
    pub fn enqueued(&self) {
        self.queued.fetch_add(1, Ordering::AcqRel);
    }

    /// Counts a command taken back (its send failed) or applied by the core
    /// task (which holds the lock while it does).
    pub fn dequeued(&self) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
    }

    /// The core task's access to the state; None if a sender panicked while
    /// applying a command.
    pub fn lock(&self) -> Option<MutexGuard<'_, CoreState>> {
        self.state.lock().ok()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::broker::api::{ConnId, Outbox};
    use crate::broker::message::Message;
    use crate::broker::test_client::{Client, broker, connect_request, subscribe};
    use crate::qos::QoS;

    /// A core with a subscriber to `t` and a publisher, wrapped for sharing.
    fn core_with_pair() -> (SharedCore, Client, ConnId) {
        let (mut b, now) = broker();
        let mut clients = ["sub", "pub"].map(|id| {
            let (outbox, rx) = Outbox::channel();
            let conn = ConnId::next();
            b.handle(Command::Connect(connect_request(conn, id, outbox)), now);
            Client { conn, rx }
        });
        subscribe(&mut b, &clients[0], "t", QoS::AtMostOnce, now);
        let publisher = clients[1].conn;
        clients[0].events(); // CONNACK, SUBACK
        let [sub, _] = clients;
        (SharedCore::new(b), sub, publisher)
    }

    fn publish(conn: ConnId, payload: &'static str) -> Command {
        Command::Publish {
            conn,
            packet_id: None,
            message: Message::new("t", Bytes::from(payload), QoS::AtMostOnce, false),
        }
    }

    #[test]
    fn an_idle_core_applies_the_command_in_the_callers_task() {
        let (core, mut sub, publisher) = core_with_pair();
        assert!(matches!(
            core.try_apply(publish(publisher, "now")),
            Applied::Done
        ));
        // Delivered before try_apply returned: no task had to run.
        assert_eq!(sub.payloads(), ["now"]);
    }

    #[test]
    fn a_command_waits_behind_one_still_queued_for_the_core() {
        let (core, mut sub, publisher) = core_with_pair();
        core.enqueued();
        let Applied::Busy(cmd) = core.try_apply(publish(publisher, "later")) else {
            panic!("applied ahead of a queued command");
        };
        assert!(sub.payloads().is_empty());
        // The core task applied the queued one: the next goes straight in.
        core.dequeued();
        assert!(matches!(core.try_apply(cmd), Applied::Done));
        assert_eq!(sub.payloads(), ["later"]);
    }

    #[test]
    fn a_core_busy_applying_gives_the_command_back() {
        let (core, mut sub, publisher) = core_with_pair();
        let guard = core.lock();
        assert!(matches!(
            core.try_apply(publish(publisher, "x")),
            Applied::Busy(_)
        ));
        drop(guard);
        assert!(sub.payloads().is_empty());
    }

    #[test]
    fn a_core_that_has_shut_down_applies_nothing() {
        let (core, mut sub, publisher) = core_with_pair();
        if let Some(mut state) = core.lock() {
            state.closed = true;
        }
        assert!(matches!(
            core.try_apply(publish(publisher, "x")),
            Applied::Closed
        ));
        assert!(sub.payloads().is_empty());
    }
}
