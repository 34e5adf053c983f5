//! Gateway modes for an external broker (MQTT-SN 1.2 §4: transparent and
//! aggregating gateways). A task with the same interface as the built-in
//! broker core — it takes the gateway's [`Command`](crate::broker::Command)s
//! on a channel and answers with [`Outbound`](crate::broker::Outbound)
//! events on each sensor's outbox — so the gateway core does not know which
//! broker it talks to.
//!
//! - transparent: each sensor gets its own upstream MQTT connection (client
//!   id = prefix + sensor id, its will, its clean-session mapping); sngate
//!   sends the PINGREQs, so a sleeping sensor's upstream session stays up.
//! - aggregating: sensors share a pool of connections; sngate keeps the
//!   subscription table, queues for persistent sensors while they are away
//!   and publishes a lost sensor's will itself.
//!
//! Sensor QoS 1/2 messages are acknowledged once held (see [`held`]; on
//! disk with persistence, see [`held_redb`]) and delivered in order when the
//! upstream is reachable; while no upstream connection is up, the gateway
//! refuses new sensors with "congestion".

pub mod connect;
pub mod credentials;
pub mod held;
pub mod held_redb;
pub mod link;
pub mod router;
pub mod sessions;
pub mod sessions_redb;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bridge::transport::TlsSetupError;
use crate::broker::BrokerHandle;
use crate::config::{GatewayConfig, GatewayMode, PersistenceConfig};
use connect::ConnectFactory;
use credentials::{CredentialsError, CredentialsMap};
use held::{HeldStore, MemoryHeld};
use held_redb::{HELD_FILE, HeldOpenError, RedbHeld};
use router::{Mode, Router, Stores};
use sessions::{NoSessions, SessionStore};
use sessions_redb::RedbSessions;

/// Commands queued ahead of the upstream task before the gateway waits.
const COMMAND_QUEUE: usize = 1024;
/// Link reports queued ahead of the upstream task before links wait.
const EVENT_QUEUE: usize = 4096;

/// Why the upstream task cannot start.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The TLS settings are unusable.
    #[error("[gateway.upstream] tls: {0}")]
    Tls(#[from] TlsSetupError),
    /// The credentials file is unusable.
    #[error("[gateway.upstream] {0}")]
    Credentials(#[from] CredentialsError),
    /// The held-message file cannot be used.
    #[error("[persistence] held upstream messages: {0}")]
    Held(#[from] HeldOpenError),
    /// `mode = "broker"` has no upstream.
    #[error("gateway.mode = \"broker\" does not use an upstream broker")]
    NotUpstreamMode,
}

/// Counters of the upstream task (all monotonic except `links_up`).
#[derive(Debug, Default)]
pub struct UpstreamStats {
    /// Upstream connections currently up.
    pub links_up: AtomicU64,
    /// Successful upstream CONNECTs.
    pub connects: AtomicU64,
    /// Upstream connections lost (then retried).
    pub link_losses: AtomicU64,
    /// First connection attempts of sensors that failed.
    pub connect_failures: AtomicU64,
    /// Sensors refused (no credentials, upstream refusal).
    pub refused_sensors: AtomicU64,
    /// QoS 1/2 sensor messages accepted and held.
    pub held: AtomicU64,
    /// Sensor messages refused with congestion because `max_queued` was reached.
    pub refused_full: AtomicU64,
    /// Held messages the upstream refused after the sensor was acknowledged.
    pub refused_upstream: AtomicU64,
    /// PUBLISH packets sent upstream.
    pub published: AtomicU64,
    /// QoS 0 sensor messages dropped while the upstream was down.
    pub dropped_qos0: AtomicU64,
    /// PUBLISH packets received from the upstream.
    pub received: AtomicU64,
    /// Deliveries handed to sensors.
    pub delivered: AtomicU64,
    /// Deliveries dropped because a sensor had too many unacknowledged.
    pub dropped_deliveries: AtomicU64,
    /// Wills published by sngate (aggregating mode).
    pub wills: AtomicU64,
}

/// A running upstream task.
#[derive(Debug)]
pub struct Upstream {
    /// Where the gateway sends its commands.
    pub broker: BrokerHandle,
    /// Whether the upstream can take new sensors.
    pub available: watch::Receiver<bool>,
    /// Counters.
    pub stats: Arc<UpstreamStats>,
    /// The task.
    pub task: JoinHandle<()>,
}

/// Starts the upstream task for `gateway.mode`; with `[persistence]
/// enabled` held messages and aggregating mode's persistent sensor sessions
/// live in `upstream.redb` and survive a restart.
pub fn spawn(
    config: &GatewayConfig,
    persistence: &PersistenceConfig,
    shutdown: CancellationToken,
) -> Result<Upstream, UpstreamError> {
    let max = config.upstream.max_queued;
    if !persistence.enabled {
        return spawn_with_store(config, Box::new(MemoryHeld::new(max)), shutdown);
    }
    let held = RedbHeld::open(&persistence.path, max)?;
    let sessions = RedbSessions::open(held.database()).map_err(|why| HeldOpenError {
        path: persistence.path.join(HELD_FILE),
        why,
    })?;
    spawn_with_stores(config, Box::new(held), Box::new(sessions), shutdown)
}

/// Starts the upstream task with a given held-message store and no
/// persistent sessions.
pub fn spawn_with_store(
    config: &GatewayConfig,
    held: Box<dyn HeldStore>,
    shutdown: CancellationToken,
) -> Result<Upstream, UpstreamError> {
    spawn_with_stores(config, held, Box::new(NoSessions), shutdown)
}

/// Starts the upstream task with given stores; a durable session store also
/// makes the pool's own upstream sessions persistent (clean_start = 0), so
/// what the upstream broker receives while sngate is down waits for it.
pub fn spawn_with_stores(
    config: &GatewayConfig,
    held: Box<dyn HeldStore>,
    sessions: Box<dyn SessionStore>,
    shutdown: CancellationToken,
) -> Result<Upstream, UpstreamError> {
    let mode = match config.mode {
        GatewayMode::Broker => return Err(UpstreamError::NotUpstreamMode),
        GatewayMode::Transparent => Mode::Transparent,
        GatewayMode::Aggregating => Mode::Aggregating,
    };
    let credentials = config
        .upstream
        .credentials_file
        .as_deref()
        .map(CredentialsMap::load)
        .transpose()?;
    let mut factory = ConnectFactory::new(&config.upstream, credentials)?;
    factory.set_drain_expiry(u32::try_from(config.persistent_session_expiry).unwrap_or(u32::MAX));
    // Transparent mode's shared connection only publishes: nothing to keep.
    factory.set_persistent_pool(sessions.durable() && mode == Mode::Aggregating);
    let (cmd_tx, mut cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    let (ev_tx, mut ev_rx) = mpsc::channel(EVENT_QUEUE);
    let (avail_tx, avail_rx) = watch::channel(false);
    let stats = Arc::new(UpstreamStats::default());
    let mut router = Router::new(
        mode,
        factory,
        ev_tx,
        Stores { held, sessions },
        avail_tx,
        stats.clone(),
        shutdown.clone(),
    );
    let task = tokio::spawn(async move {
        router.start(Instant::now());
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                ev = ev_rx.recv() => match ev {
                    Some(ev) => router.on_link_event(Instant::now(), ev),
                    None => break,
                },
                cmd = cmd_rx.recv() => match cmd {
                    Some(cmd) => router.on_command(Instant::now(), cmd),
                    None => break,
                },
            }
        }
        router.shut_down();
    });
    Ok(Upstream {
        broker: BrokerHandle::new(cmd_tx),
        available: avail_rx,
        stats,
        task,
    })
}
