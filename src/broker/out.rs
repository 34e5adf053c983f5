//! Where the core's outbound events go: straight to the connections, or held
//! back until the batch that produced them is on disk (durable persistence).

use super::api::{ConnId, Outbound, Outbox};
use super::outbox::OutboxWake;

/// Whether the runtime runs woken tasks in the order they were woken. The
/// `sngate` binary builds its runtime without tokio's LIFO slot when compiled
/// with the `tokio_unstable` cfg (`.cargo/config.toml`); otherwise tokio runs
/// the task woken last first. The core orders its wake-ups for either, so
/// that subscribers write a message before its publisher writes the PUBACK.
pub const RUNS_IN_WAKE_ORDER: bool = cfg!(tokio_unstable);

/// The core's outbound events of the current batch.
///
/// Direct (persistence off) events go out at once. Holding (persistence on)
/// keeps them, in order, until [`Out::release`]: a PUBACK must not reach a
/// publisher, nor a delivery a subscriber, before the state it depends on is
/// committed, or a crash could lose what was acknowledged.
#[derive(Debug, Default)]
pub struct Out {
    hold: bool,
    held: Vec<(Outbox, ConnId, Outbound)>,
    /// Between [`Out::defer_delivery_wakes`] and [`Out::wake_deliveries`]:
    /// the subscribers' wake-ups owed for deliveries already queued.
    deferring: bool,
    owed: Vec<OutboxWake>,
    /// [`Out::release`]: wake-ups owed for events other than deliveries.
    owed_first: Vec<OutboxWake>,
}

impl Out {
    /// Sends events as they are produced.
    pub fn direct() -> Out {
        Out::default()
    }

    /// Holds events until [`Out::release`].
    pub fn holding() -> Out {
        Out {
            hold: true,
            ..Out::default()
        }
    }

    /// True when events are held.
    pub fn is_holding(&self) -> bool {
        self.hold
    }

    /// Sends (or holds) one event for `conn`.
    pub fn send(&mut self, outbox: &Outbox, conn: ConnId, event: Outbound) {
        if self.hold {
            self.held.push((outbox.clone(), conn, event));
        } else if self.deferring && matches!(event, Outbound::Deliver(_)) {
            self.owed.extend(outbox.send_quiet(conn, event));
        } else {
            outbox.send(conn, event);
        }
    }

    /// With a runtime that runs the task woken last first, queues deliveries
    /// without waking their subscribers until [`Out::wake_deliveries`], so
    /// that a publisher's acknowledgement can be sent in between and its
    /// connection woken first. In wake order (see [`RUNS_IN_WAKE_ORDER`])
    /// nothing is deferred: the core sends the acknowledgement after routing,
    /// so subscribers are woken, and run, first.
    ///
    /// Why: a publisher that runs before its subscribers writes its PUBACK
    /// before they write the message, and on loopback that write (which
    /// wakes the publisher's process) costs the delivery 10–25 µs.
    /// Subscribers that run first write first, as Mosquitto delivers before
    /// it acknowledges.
    pub fn defer_delivery_wakes(&mut self) {
        self.deferring = !self.hold && !RUNS_IN_WAKE_ORDER;
    }

    /// Wakes the subscribers of the deliveries queued since
    /// [`Out::defer_delivery_wakes`], in the order they were queued.
    pub fn wake_deliveries(&mut self) {
        self.deferring = false;
        for w in self.owed.drain(..) {
            w.wake();
        }
    }

    /// Events held so far, oldest first.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Takes the held events, oldest first.
    pub fn take(&mut self) -> Vec<(Outbox, ConnId, Outbound)> {
        std::mem::take(&mut self.held)
    }

    /// Sends every held event, oldest first, and then wakes the connections
    /// so that those with deliveries run first: a batch's PUBACKs do not go
    /// out ahead of its messages (see [`Out::defer_delivery_wakes`]).
    pub fn release(&mut self) {
        let mut others = std::mem::take(&mut self.owed_first);
        for (outbox, conn, event) in self.held.drain(..) {
            let deliver = matches!(event, Outbound::Deliver(_));
            if let Some(w) = outbox.send_quiet(conn, event) {
                if deliver {
                    self.owed.push(w);
                } else {
                    others.push(w);
                }
            }
        }
        if RUNS_IN_WAKE_ORDER {
            self.owed.drain(..).for_each(OutboxWake::wake);
            others.drain(..).for_each(OutboxWake::wake);
        } else {
            others.drain(..).for_each(OutboxWake::wake);
            self.owed.drain(..).for_each(OutboxWake::wake);
        }
        self.owed_first = others;
    }
}
