//! Where the core's outbound events go: straight to the connections, or held
//! back until the batch that produced them is on disk (durable persistence).

use super::api::{ConnId, Outbound, Outbox};

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
            held: Vec::new(),
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
        } else {
            outbox.send(conn, event);
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

    /// Sends every held event, oldest first.
    pub fn release(&mut self) {
        for (outbox, conn, event) in self.held.drain(..) {
            outbox.send(conn, event);
        }
    }
}
