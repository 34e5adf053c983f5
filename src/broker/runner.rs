//! The core task: the broker state's keeper, fed by a bounded command
//! channel (rumqttd's router idea). Without persistence the state sits
//! behind a lock that an idle core lets a sender take for one command
//! ([`SharedCore`]); the core task applies everything that was queued.
//!
//! With persistence on, every batch of commands ends with one store commit
//! (group commit): the batch's outbound events are held until it returns, so
//! nothing is acknowledged or delivered before it is kept. Commands arriving
//! meanwhile wait in the channel and form the next batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info};

use super::api::Command;
use super::core::{Broker, BrokerSettings};
use super::handle::BrokerHandle;
use super::metrics::Metrics;
use super::persist::unix_ms_now;
use super::shared_core::{SharedCore, core_span};
use crate::store::{Snapshot, Store, StoreError, StoreOp, StoreStats};

/// Commands waiting for the core before senders are made to wait.
const COMMAND_QUEUE: usize = 4096;
/// Acknowledgements waiting on their priority lane; bounded so that a client
/// flooding bogus PUBACKs waits like any other sender.
const ACK_QUEUE: usize = 4096;
/// Commands applied before timers get a look-in.
const BATCH: usize = 512;
/// Ops kept for retry beyond which superseded ones are dropped.
const COMPACT_ABOVE: usize = 1024;
/// Least time between two "store failing" error lines.
const ERROR_LOG_PERIOD: Duration = Duration::from_secs(10);

/// When commits reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Every batch is fsync'd before its acknowledgements go out.
    Always,
    /// Batches are written without fsync and made durable every interval.
    Interval(Duration),
}

/// The durable store the core task writes to, and what it held at start-up.
pub struct Persistence {
    /// The opened store.
    pub store: Box<dyn Store>,
    /// What [`Store::load`] returned; restored before the first command.
    pub snapshot: Snapshot,
    /// When commits are fsync'd.
    pub sync: SyncPolicy,
}

impl std::fmt::Debug for Persistence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persistence")
            .field("sync", &self.sync)
            .finish_non_exhaustive()
    }
}

/// Starts the core task without persistence. It stops when `shutdown` is
/// cancelled (telling every connection first) or when every handle is dropped.
pub fn spawn(
    settings: BrokerSettings,
    shutdown: CancellationToken,
) -> (BrokerHandle, Arc<Metrics>, JoinHandle<()>) {
    spawn_with(settings, None, shutdown)
}

/// Starts the core task; with `persistence`, the snapshot is restored first
/// and every batch is committed to the store before its events are released.
pub fn spawn_with(
    settings: BrokerSettings,
    persistence: Option<Persistence>,
    shutdown: CancellationToken,
) -> (BrokerHandle, Arc<Metrics>, JoinHandle<()>) {
    let (tx, commands) = mpsc::channel(COMMAND_QUEUE);
    let (ack_tx, acks) = mpsc::channel(ACK_QUEUE);
    let rx = Inbox { commands, acks };
    let metrics = Arc::new(Metrics::default());
    let now = Instant::now();
    let mut broker = Broker::new(settings, metrics.clone(), now);
    let task = match persistence {
        None => {
            let (handle, _, task) = spawn_plain(broker, (tx, ack_tx), rx, shutdown);
            return (handle, metrics, task);
        }
        Some(p) => {
            broker.restore(p.snapshot, now, unix_ms_now());
            let committer = Committer {
                store: Some(p.store),
                retry: Vec::new(),
                sync: p.sync,
                unsynced: false,
                last_error_log: None,
            };
            tokio::spawn(run_persistent(broker, rx, shutdown, committer).instrument(core_span()))
        }
    };
    (BrokerHandle::with_ack_lane(tx, ack_tx), metrics, task)
}

/// Starts the core task without persistence, its state shared with the handle.
fn spawn_plain(
    broker: Broker,
    (tx, ack_tx): (mpsc::Sender<Command>, mpsc::Sender<Command>),
    rx: Inbox,
    shutdown: CancellationToken,
) -> (BrokerHandle, Arc<SharedCore>, JoinHandle<()>) {
    let shared = Arc::new(SharedCore::new(broker));
    let handle = BrokerHandle::with_shared_core(tx, ack_tx, shared.clone());
    let span = shared.span().clone();
    let task = tokio::spawn(run_plain(shared.clone(), rx, shutdown).instrument(span));
    (handle, shared, task)
}

/// The core's two command lanes: acknowledgements are served first.
struct Inbox {
    commands: mpsc::Receiver<Command>,
    acks: mpsc::Receiver<Command>,
}

impl Inbox {
    /// The next command, acknowledgements first; `None` once every handle is gone.
    async fn recv(&mut self) -> Option<Command> {
        tokio::select! {
            biased;
            Some(ack) = self.acks.recv() => Some(ack),
            cmd = self.commands.recv() => cmd,
        }
    }

    /// A command that is already waiting, acknowledgements first.
    fn try_recv(&mut self) -> Option<Command> {
        self.acks
            .try_recv()
            .or_else(|_| self.commands.try_recv())
            .ok()
    }

    /// `first`, then up to `BATCH` commands already waiting: one turn of the core.
    fn batch(&mut self, first: Command) -> impl Iterator<Item = Command> + '_ {
        std::iter::once(first)
            .chain(std::iter::from_fn(|| self.try_recv()))
            .take(BATCH + 1)
    }
}

async fn run_plain(shared: Arc<SharedCore>, mut rx: Inbox, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Pinned once: a fresh `cancelled()` in every round would join and
    // leave the token's waiter list around every command.
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);
    loop {
        tokio::select! {
            biased;
            () = &mut cancelled => break,
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { break };
                let Some(mut state) = shared.lock() else { break };
                let now = Instant::now();
                for cmd in rx.batch(cmd) {
                    state.broker.handle(cmd, now);
                    // Under the lock, after applying: see `SharedCore`.
                    shared.dequeued();
                }
            }
            _ = tick.tick() => {
                let Some(mut state) = shared.lock() else { break };
                state.broker.tick(Instant::now());
            }
        }
    }
    match shared.lock() {
        Some(mut state) => {
            state.broker.shutdown();
            state.closed = true;
        }
        None => error!("the broker core failed while applying a command; closing every connection"),
    }
}

async fn run_persistent(
    mut broker: Broker,
    mut rx: Inbox,
    shutdown: CancellationToken,
    mut committer: Committer,
) {
    // Whatever restore changed (sessions expired while stopped) goes first.
    committer.finish_batch(&mut broker, true).await;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let sync_every = match committer.sync {
        SyncPolicy::Interval(d) => d.max(Duration::from_millis(10)),
        // Unused: every commit is durable.
        SyncPolicy::Always => Duration::from_secs(3600),
    };
    let mut sync = tokio::time::interval(sync_every);
    sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);
    loop {
        tokio::select! {
            biased;
            () = &mut cancelled => break,
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { break };
                let now = Instant::now();
                for cmd in rx.batch(cmd) {
                    broker.handle(cmd, now);
                }
                committer.finish_batch(&mut broker, false).await;
            }
            _ = tick.tick() => {
                broker.tick(Instant::now());
                committer.finish_batch(&mut broker, false).await;
            }
            _ = sync.tick(), if committer.unsynced => {
                committer.finish_batch(&mut broker, true).await;
            }
        }
    }
    broker.shutdown();
    committer.finish_batch(&mut broker, true).await;
    let stats = committer.stats();
    info!(
        commits = stats.commits,
        durable_commits = stats.durable_commits,
        failed_commits = stats.failed_commits,
        fsyncs = stats.syncs,
        bytes_written = stats.bytes_written,
        "persistence: store closed"
    );
}

/// Commits each batch's ops, keeping failed ones to retry in front of the next.
struct Committer {
    store: Option<Box<dyn Store>>,
    retry: Vec<StoreOp>,
    sync: SyncPolicy,
    /// Interval mode: some commit since the last durable one.
    unsynced: bool,
    last_error_log: Option<Instant>,
}

impl Committer {
    fn stats(&self) -> StoreStats {
        self.store.as_ref().map(|s| s.stats()).unwrap_or_default()
    }

    /// Commits what the batch changed, then releases (or on failure refuses)
    /// its held events. `force_durable` makes this commit an fsync even in
    /// interval mode (the periodic sync, shutdown).
    async fn finish_batch(&mut self, broker: &mut Broker, force_durable: bool) {
        let ops = broker.take_ops();
        let durable = force_durable || self.sync == SyncPolicy::Always;
        if ops.is_empty() && self.retry.is_empty() && !(force_durable && self.unsynced) {
            broker.release_held();
            return;
        }
        let mut all = std::mem::take(&mut self.retry);
        all.extend(ops);
        let Some(mut store) = self.store.take() else {
            self.retry = all;
            broker.commit_failed();
            return;
        };
        let joined = tokio::task::spawn_blocking(move || {
            let result = store.commit(&all, durable);
            (store, all, result)
        })
        .await;
        let (store, all, result) = match joined {
            Ok(r) => r,
            Err(e) => {
                // The store went with the panicked thread: nothing is kept
                // from now on, so nothing more is acknowledged.
                error!(
                    "persistence: the store thread failed ({e}); QoS 1/2 publishes are refused until restart"
                );
                broker.commit_failed();
                return;
            }
        };
        self.store = Some(store);
        match result {
            Ok(_) => {
                self.unsynced = !durable;
                broker.commit_succeeded();
            }
            Err(e) => {
                self.log_failure(&e);
                self.retry = if all.len() > COMPACT_ABOVE {
                    super::compact::compact(all)
                } else {
                    all
                };
                broker.commit_failed();
            }
        }
    }

    fn log_failure(&mut self, e: &StoreError) {
        let now = Instant::now();
        if self
            .last_error_log
            .is_some_and(|at| now.saturating_duration_since(at) < ERROR_LOG_PERIOD)
        {
            return;
        }
        self.last_error_log = Some(now);
        let what = if e.is_full() {
            "store full"
        } else {
            "store write failed"
        };
        error!(
            "persistence: {what}: {e}. New QoS 1/2 publishes are refused (QoS 0 still flows) \
             until a write succeeds; retrying every second"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::api::{ConnId, Outbox};
    use crate::broker::test_client::{Client, broker, connect_request, subscribe};
    use crate::broker::{Sent, TrySendError};
    use crate::qos::QoS;

    fn publish(conn: ConnId, payload: &'static str) -> Command {
        Command::Publish {
            conn,
            packet_id: None,
            message: crate::broker::Message::new(
                "t",
                bytes::Bytes::from(payload),
                QoS::AtMostOnce,
                false,
            ),
        }
    }

    /// A client's commands keep their order whichever way each one reaches
    /// the core: queued while the core was busy, or applied by the sender
    /// once it is idle again.
    #[tokio::test]
    async fn commands_queued_while_the_core_was_busy_stay_ahead_of_later_ones() {
        let (mut b, now) = broker();
        let (outbox, rx) = Outbox::channel();
        let mut sub = Client {
            conn: ConnId::next(),
            rx,
        };
        b.handle(
            Command::Connect(connect_request(sub.conn, "sub", outbox)),
            now,
        );
        subscribe(&mut b, &sub, "t", QoS::AtMostOnce, now);
        let (outbox, _pub_rx) = Outbox::channel();
        let publisher = ConnId::next();
        b.handle(
            Command::Connect(connect_request(publisher, "pub", outbox)),
            now,
        );
        sub.events();
        let (tx, commands) = mpsc::channel(8);
        let (ack_tx, acks) = mpsc::channel(8);
        let shutdown = CancellationToken::new();
        let (handle, shared, core) =
            spawn_plain(b, (tx, ack_tx), Inbox { commands, acks }, shutdown.clone());

        let busy = shared.lock();
        assert_eq!(
            handle.try_send(publish(publisher, "1")).ok(),
            Some(Sent::Queued)
        );
        drop(busy);
        // Idle again, but "1" is still in the channel: "2" goes behind it.
        assert_eq!(
            handle.try_send(publish(publisher, "2")).ok(),
            Some(Sent::Queued)
        );
        let mut got = Vec::new();
        while got.len() < 2 {
            tokio::task::yield_now().await;
            got.extend(sub.payloads());
        }
        assert_eq!(
            handle.try_send(publish(publisher, "3")).ok(),
            Some(Sent::Applied)
        );
        got.extend(sub.payloads());
        assert_eq!(got, ["1", "2", "3"]);

        shutdown.cancel();
        core.await.unwrap();
        assert!(matches!(
            handle.try_send(publish(publisher, "4")),
            Err(TrySendError::Closed(_))
        ));
    }

    /// With persistence, what a command changes must be committed before
    /// anything it produced goes out, which only the core task does: no
    /// sender applies a command itself.
    #[tokio::test]
    async fn with_persistence_every_command_is_queued_for_the_core_task() {
        let shutdown = CancellationToken::new();
        let persistence = Persistence {
            store: Box::new(crate::store::MemoryStore::new()),
            snapshot: Snapshot::default(),
            sync: SyncPolicy::Always,
        };
        let (handle, _metrics, core) = spawn_with(
            BrokerSettings::default(),
            Some(persistence),
            shutdown.clone(),
        );
        let (outbox, _rx) = Outbox::channel();
        let conn = ConnId::next();
        let connect = Command::Connect(connect_request(conn, "c", outbox));
        assert_eq!(handle.try_send(connect).ok(), Some(Sent::Queued));
        assert_eq!(handle.try_send(publish(conn, "x")).ok(), Some(Sent::Queued));
        shutdown.cancel();
        core.await.unwrap();
    }

    #[tokio::test]
    async fn acknowledgements_are_served_before_waiting_publishes() {
        let (tx, commands) = mpsc::channel(8);
        let (ack_tx, acks) = mpsc::channel(8);
        let handle = BrokerHandle::with_ack_lane(tx, ack_tx);
        let mut inbox = Inbox { commands, acks };
        let conn = ConnId(1);
        handle
            .send(Command::PublishInternal {
                message: crate::broker::Message::new(
                    "t",
                    bytes::Bytes::new(),
                    crate::qos::QoS::AtMostOnce,
                    false,
                ),
            })
            .await
            .unwrap();
        handle
            .send(Command::PubRel { conn, packet_id: 1 })
            .await
            .unwrap();
        handle
            .send(Command::PubAck { conn, packet_id: 2 })
            .await
            .unwrap();
        assert!(matches!(
            inbox.recv().await,
            Some(Command::PubAck { packet_id: 2, .. })
        ));
        assert!(matches!(
            inbox.try_recv(),
            Some(Command::PublishInternal { .. })
        ));
        // PUBREL keeps its place behind the client's own publishes.
        assert!(matches!(
            inbox.try_recv(),
            Some(Command::PubRel { packet_id: 1, .. })
        ));
    }
}
