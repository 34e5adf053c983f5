//! The core task: the single owner of the broker state, fed by a bounded
//! command channel (rumqttd's router idea: no locks on routing state).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::core::{Broker, BrokerSettings};
use super::handle::BrokerHandle;
use super::metrics::Metrics;

/// Commands waiting for the core before senders are made to wait.
const COMMAND_QUEUE: usize = 4096;
/// Commands applied before timers get a look-in.
const BATCH: usize = 512;

/// Starts the core task. It stops when `shutdown` is cancelled (telling every
/// connection first) or when every handle is dropped.
pub fn spawn(
    settings: BrokerSettings,
    shutdown: CancellationToken,
) -> (BrokerHandle, Arc<Metrics>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel(COMMAND_QUEUE);
    let metrics = Arc::new(Metrics::default());
    let mut broker = Broker::new(settings, metrics.clone(), Instant::now());
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    let now = Instant::now();
                    broker.handle(cmd, now);
                    for _ in 0..BATCH {
                        match rx.try_recv() {
                            Ok(cmd) => broker.handle(cmd, now),
                            Err(_) => break,
                        }
                    }
                }
                _ = tick.tick() => broker.tick(Instant::now()),
            }
        }
        broker.shutdown();
    });
    (BrokerHandle::new(tx), metrics, task)
}
