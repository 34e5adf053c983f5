//! A connection's outbound queue: the core sends [`Outbound`] events into it
//! without ever waiting, and it carries the connection's back-pressure state.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use tokio::sync::mpsc;

use super::api::{ConnId, Outbound};

/// The sending half of a connection's outbound queue.
///
/// The queue itself is unbounded so that the core never waits on a slow
/// consumer; memory is bounded instead by the core's accounting: QoS 1/2
/// deliveries are limited by the in-flight window, and QoS 0 deliveries are
/// dropped (and counted) once `pending` passes the configured limit. The
/// connection decrements `pending` as it writes deliveries out.
///
/// The outbox also carries the connection's back-pressure state: the core
/// blocks a publisher whose QoS 1/2 messages fill a subscriber's queue, and
/// the connection stops reading its socket until [`Outbox::unblocked`].
#[derive(Debug)]
pub struct Outbox {
    tx: Tx,
    shared: Arc<OutboxShared>,
}

#[derive(Debug, Clone)]
enum Tx {
    /// The [`OutboxQueue`] in `shared`.
    Queue,
    /// A tokio channel, possibly shared by many outboxes (the gateway).
    Channel(mpsc::UnboundedSender<(ConnId, Outbound)>),
}

/// State shared between the core's side of an outbox and its connection.
#[derive(Debug, Default)]
struct OutboxShared {
    pending: AtomicUsize,
    /// Subscriber sessions over their queue bound because of this publisher.
    blockers: AtomicUsize,
    /// The one task waiting for the publisher to be unblocked (its
    /// connection); a waker slot, not a `Notify`, because a hand-polled
    /// connection has no room for a `Notified` future.
    resume: AtomicWaker,
    /// [`Tx::Queue`] only: the events, the receiver's wake-up, the number of
    /// outboxes alive and whether the receiver is gone.
    events: Mutex<VecDeque<(ConnId, Outbound)>>,
    ready: AtomicWaker,
    senders: AtomicUsize,
    receiver_gone: AtomicBool,
}

/// The receiving half of a tokio-channel [`Outbox`] (shared by the gateway's sensors).
pub type OutboxReceiver = mpsc::UnboundedReceiver<(ConnId, Outbound)>;

/// The receiving half of a queue [`Outbox`]: one connection's events. It
/// holds no memory while empty, unlike a channel, which keeps a block of 32
/// slots per connection even when idle.
#[derive(Debug)]
pub struct OutboxQueue {
    shared: Arc<OutboxShared>,
}

impl Outbox {
    /// A new outbox with its own tokio channel.
    pub fn channel() -> (Outbox, OutboxReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Outbox::with_sender(tx), rx)
    }

    /// A new outbox with its own queue (one per MQTT connection).
    pub fn queue() -> (Outbox, OutboxQueue) {
        let shared = Arc::new(OutboxShared {
            senders: AtomicUsize::new(1),
            ..OutboxShared::default()
        });
        let rx = OutboxQueue {
            shared: shared.clone(),
        };
        (
            Outbox {
                tx: Tx::Queue,
                shared,
            },
            rx,
        )
    }

    /// An outbox on a shared channel (the gateway multiplexes many sensors on one).
    pub fn with_sender(tx: mpsc::UnboundedSender<(ConnId, Outbound)>) -> Outbox {
        Outbox {
            tx: Tx::Channel(tx),
            shared: Arc::default(),
        }
    }

    /// Sends an event; returns false if the connection is gone.
    pub fn send(&self, conn: ConnId, event: Outbound) -> bool {
        if matches!(event, Outbound::Deliver(_)) {
            self.shared.pending.fetch_add(1, Ordering::Relaxed);
        }
        match &self.tx {
            Tx::Channel(tx) => tx.send((conn, event)).is_ok(),
            Tx::Queue => {
                if self.shared.receiver_gone.load(Ordering::Acquire) {
                    return false;
                }
                self.shared.lock().push_back((conn, event));
                // The receiver registers before it re-checks the queue, so it
                // cannot miss this.
                self.shared.ready.wake();
                true
            }
        }
    }

    /// Sends an event without waking the connection, which the returned
    /// [`OutboxWake`] does later; a channel outbox wakes its receiver at once
    /// and returns None, as does an outbox whose connection is gone.
    pub fn send_quiet(&self, conn: ConnId, event: Outbound) -> Option<OutboxWake> {
        if !matches!(self.tx, Tx::Queue) {
            self.send(conn, event);
            return None;
        }
        if self.shared.receiver_gone.load(Ordering::Acquire) {
            return None;
        }
        if matches!(event, Outbound::Deliver(_)) {
            self.shared.pending.fetch_add(1, Ordering::Relaxed);
        }
        self.shared.lock().push_back((conn, event));
        Some(OutboxWake(self.shared.clone()))
    }

    /// Deliveries sent but not yet written by the connection.
    pub fn pending(&self) -> usize {
        self.shared.pending.load(Ordering::Relaxed)
    }

    /// Called by the connection after it has written (or dropped) one delivery.
    pub fn delivered(&self) {
        // Saturating: a stale outbox must never wrap around.
        let _ = self
            .shared
            .pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// True when the receiving side has gone away.
    pub fn is_closed(&self) -> bool {
        match &self.tx {
            Tx::Channel(tx) => tx.is_closed(),
            Tx::Queue => self.shared.receiver_gone.load(Ordering::Acquire),
        }
    }

    /// One more subscriber queue is over its bound because of this
    /// publisher: its connection should stop reading until unblocked.
    pub fn block(&self) {
        self.shared.blockers.fetch_add(1, Ordering::Relaxed);
    }

    /// One subscriber queue that blocked this publisher has drained (or gone).
    pub fn unblock(&self) {
        let before = self
            .shared
            .blockers
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if before == Ok(1) {
            self.shared.resume.wake();
        }
    }

    /// True while some subscriber queue is over its bound because of this publisher.
    pub fn is_blocked(&self) -> bool {
        self.shared.blockers.load(Ordering::Relaxed) > 0
    }

    /// Ready once no subscriber queue blocks this publisher. Only one task
    /// (the connection) may wait at a time.
    pub fn poll_unblocked(&self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.is_blocked() {
            return Poll::Ready(());
        }
        // Registered before the second check, so an unblock in between is not missed.
        self.shared.resume.register(cx.waker());
        if self.is_blocked() {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }

    /// Waits until no subscriber queue blocks this publisher.
    pub async fn unblocked(&self) {
        std::future::poll_fn(|cx| self.poll_unblocked(cx)).await;
    }
}

/// A connection's wake-up owed for events sent with [`Outbox::send_quiet`].
#[derive(Debug)]
pub struct OutboxWake(Arc<OutboxShared>);

impl OutboxWake {
    /// Wakes the connection, which then finds its events.
    pub fn wake(self) {
        self.0.ready.wake();
    }
}

impl Clone for Outbox {
    fn clone(&self) -> Outbox {
        if matches!(self.tx, Tx::Queue) {
            self.shared.senders.fetch_add(1, Ordering::Relaxed);
        }
        Outbox {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if matches!(self.tx, Tx::Queue) && self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.ready.wake();
        }
    }
}

impl OutboxShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(ConnId, Outbound)>> {
        // Nothing panics while holding the lock; a poisoned queue is still consistent.
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl OutboxQueue {
    /// The next event; `None` once every [`Outbox`] is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<(ConnId, Outbound)> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next event, or a registration to be woken when one arrives.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<(ConnId, Outbound)>> {
        match self.try_recv() {
            Ok(event) => return Poll::Ready(Some(event)),
            Err(mpsc::error::TryRecvError::Disconnected) => return Poll::Ready(None),
            Err(mpsc::error::TryRecvError::Empty) => {}
        }
        // Registered before the second look, so a send in between is not missed.
        self.shared.ready.register(cx.waker());
        match self.try_recv() {
            Ok(event) => Poll::Ready(Some(event)),
            Err(mpsc::error::TryRecvError::Disconnected) => Poll::Ready(None),
            Err(mpsc::error::TryRecvError::Empty) => Poll::Pending,
        }
    }

    /// True when no event is waiting.
    pub fn is_empty(&self) -> bool {
        self.shared.lock().is_empty()
    }

    /// An event already waiting, if any. The queue's memory is given back
    /// when it empties, so an idle connection holds none.
    pub fn try_recv(&mut self) -> Result<(ConnId, Outbound), mpsc::error::TryRecvError> {
        let mut events = self.shared.lock();
        let event = events.pop_front();
        let spare = if events.is_empty() && events.capacity() > 0 {
            Some(std::mem::take(&mut *events))
        } else {
            None
        };
        drop(events);
        drop(spare);
        match event {
            Some(event) => Ok(event),
            None if self.shared.senders.load(Ordering::Acquire) == 0 => {
                Err(mpsc::error::TryRecvError::Disconnected)
            }
            None => Err(mpsc::error::TryRecvError::Empty),
        }
    }
}

impl Drop for OutboxQueue {
    fn drop(&mut self) {
        self.shared.receiver_gone.store(true, Ordering::Release);
        // Events nobody will read are freed now, not with the last outbox.
        let events = std::mem::take(&mut *self.shared.lock());
        drop(events);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::api::ServerDisconnect;

    fn event() -> Outbound {
        Outbound::Disconnect(ServerDisconnect::ShuttingDown)
    }

    #[tokio::test]
    async fn queue_delivers_in_order_and_ends_when_every_outbox_is_gone() {
        let (outbox, mut rx) = Outbox::queue();
        let second = outbox.clone();
        assert!(outbox.send(ConnId(1), event()));
        assert!(second.send(ConnId(2), event()));
        drop(outbox);
        drop(second);
        assert_eq!(rx.recv().await.map(|(c, _)| c), Some(ConnId(1)));
        assert_eq!(rx.recv().await.map(|(c, _)| c), Some(ConnId(2)));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn queue_wakes_a_waiting_receiver() {
        let (outbox, mut rx) = Outbox::queue();
        let waiter = tokio::spawn(async move { rx.recv().await.map(|(c, _)| c) });
        tokio::task::yield_now().await;
        outbox.send(ConnId(7), event());
        assert_eq!(waiter.await.unwrap(), Some(ConnId(7)));
    }

    #[test]
    fn queue_holds_no_memory_once_drained() {
        let (outbox, mut rx) = Outbox::queue();
        outbox.send(ConnId(1), event());
        assert!(rx.try_recv().is_ok());
        assert_eq!(outbox.shared.lock().capacity(), 0);
    }

    #[test]
    fn a_dropped_receiver_closes_the_queue_outbox() {
        let (outbox, rx) = Outbox::queue();
        drop(rx);
        assert!(outbox.is_closed());
        assert!(!outbox.send(ConnId(1), event()));
    }

    #[tokio::test]
    async fn unblocked_returns_once_the_last_blocker_is_gone() {
        let (outbox, _rx) = Outbox::queue();
        outbox.block();
        outbox.block();
        let waiting = outbox.clone();
        let waiter = tokio::spawn(async move { waiting.unblocked().await });
        outbox.unblock();
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        outbox.unblock();
        waiter.await.unwrap();
        assert!(!outbox.is_blocked());
    }
}
