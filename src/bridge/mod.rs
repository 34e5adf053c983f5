//! Bridges to other MQTT brokers (`[[bridge]]`).
//!
//! A bridge is a client of the broker core on the local side (a persistent
//! session that subscribes to its `out` rules and publishes what its `in`
//! rules bring) and an MQTT 3.1.1 or 5 client of the remote broker, over TCP,
//! TLS or a WebSocket on either ([`transport`]). A message going out is acknowledged to the core only
//! when the remote has acknowledged it, so until then it stays in the
//! bridge's session, in the durable store when persistence is on: messages
//! survive outages of the remote broker and restarts of sngate alike (see
//! [`local`] and [`queue`]).

pub mod backoff;
pub mod echo;
pub mod link;
pub mod local;
pub mod queue;
pub mod rules;
pub mod session;
pub mod task;
pub mod transport;
pub mod upstream;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::broker::{BrokerClosed, BrokerHandle, ConnId, Outbox};
use crate::config::{BridgeConfig, ProtocolVersion as ConfigVersion};
use crate::mqtt::codec::{Connect, ConnectProperties, LastWill, ProtocolVersion, WillProperties};
use crate::qos::QoS;

use backoff::Backoff;
use queue::{OutQueue, QueueLimits};
use rules::{RuleError, TopicRule};
use session::UpstreamSession;
use task::BridgeTask;
use transport::{Connector, TlsSetupError};

/// Why a bridge could not be started.
#[derive(Debug, Error)]
pub enum BridgeError {
    /// A topic rule is unusable.
    #[error("bridge {name}: topics[{index}]: {source}")]
    Rule {
        /// Bridge name.
        name: String,
        /// Index of the rule.
        index: usize,
        /// What is wrong.
        source: RuleError,
    },
    /// TLS material could not be loaded.
    #[error("bridge {name}: {source}")]
    Tls {
        /// Bridge name.
        name: String,
        /// What is wrong.
        source: TlsSetupError,
    },
    /// The broker core is gone.
    #[error("bridge {0}: the broker core has shut down")]
    Core(String, BrokerClosed),
}

/// The retained link-state topic of a bridge, like Mosquitto's notifications.
pub fn state_topic(config: &BridgeConfig) -> String {
    config
        .notification_topic
        .clone()
        .unwrap_or_else(|| format!("$SYS/broker/connection/{}/state", config.name))
}

fn codec_version(v: ConfigVersion) -> ProtocolVersion {
    match v {
        ConfigVersion::V311 => ProtocolVersion::V311,
        ConfigVersion::V5 => ProtocolVersion::V5,
    }
}

fn connect_packet(config: &BridgeConfig, version: ProtocolVersion) -> Connect {
    let session_expiry =
        config
            .session_expiry
            .unwrap_or(if config.clean_start { 0 } else { 86_400 });
    let will = config.notifications_remote.then(|| LastWill {
        topic: state_topic(config),
        payload: Bytes::from_static(b"0"),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: WillProperties::default(),
    });
    Connect {
        protocol: version,
        clean_start: config.clean_start,
        keep_alive: config.keepalive,
        client_id: config.effective_client_id(),
        will,
        username: config.username.clone(),
        password: config
            .password
            .as_ref()
            .map(|p| Bytes::copy_from_slice(p.as_bytes())),
        properties: ConnectProperties {
            session_expiry_interval: (version.is_v5() && session_expiry > 0)
                .then_some(session_expiry),
            ..ConnectProperties::default()
        },
    }
}

/// Checks everything about the bridges that can fail before anything runs:
/// topic rules, templates and TLS files.
pub fn check(configs: &[BridgeConfig]) -> Result<(), BridgeError> {
    for c in configs {
        prepare(c)?;
    }
    Ok(())
}

fn prepare(c: &BridgeConfig) -> Result<(Vec<TopicRule>, Connector), BridgeError> {
    let mut rules = Vec::new();
    for (index, t) in c.topics.iter().enumerate() {
        let rule = TopicRule::from_config(t).map_err(|source| BridgeError::Rule {
            name: c.name.clone(),
            index,
            source,
        })?;
        rules.push(rule);
    }
    let connector = Connector::new(
        &c.name,
        c.tls.as_ref(),
        Duration::from_secs(c.connect_timeout),
    )
    .map_err(|source| BridgeError::Tls {
        name: c.name.clone(),
        source,
    })?;
    Ok((rules, connector))
}

/// A running bridge: what it was started from and how to stop it alone
/// (a config reload removing or changing it).
#[derive(Debug)]
pub struct BridgeHandle {
    /// The `[[bridge]]` table it runs.
    pub config: BridgeConfig,
    cancel: CancellationToken,
    done: tokio::task::JoinHandle<()>,
    broker: BrokerHandle,
}

impl BridgeHandle {
    /// The bridge's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Stops the bridge: a clean DISCONNECT to the remote broker (so no will),
    /// then its local state topic goes to `0`. Its local session stays as
    /// at shutdown ([`local::LOCAL_SESSION_EXPIRY`]), for a restart with a
    /// changed configuration. Waits at most `wait`.
    pub async fn stop(self, wait: Duration) {
        self.cancel.cancel();
        if tokio::time::timeout(wait, self.done).await.is_err() {
            tracing::warn!("bridge {}: did not stop within {wait:?}", self.config.name);
        }
        if self.config.notifications {
            let message = crate::broker::Message::new(
                Arc::from(state_topic(&self.config)),
                Bytes::from_static(b"0"),
                QoS::AtLeastOnce,
                true,
            );
            let _ = self
                .broker
                .send(crate::broker::Command::PublishInternal { message })
                .await;
        }
        info!("bridge {}: stopped", self.config.name);
    }

    /// Stops the bridge for good (removed from the configuration): as
    /// [`BridgeHandle::stop`], then its local session is discarded with
    /// whatever it still held for the remote broker.
    pub async fn remove(self, wait: Duration) {
        let broker = self.broker.clone();
        let name = self.config.name.clone();
        self.stop(wait).await;
        if local::retire(&name, &broker).await.is_ok() {
            info!("bridge {name}: local session discarded");
        }
    }
}

/// Discards the local sessions of bridges configured on an earlier run and
/// not any more: kept, their queues would fill for nobody until they expire.
pub async fn retire_unconfigured(configs: &[BridgeConfig], broker: &BrokerHandle) {
    let (reply, answer) = tokio::sync::oneshot::channel();
    if broker
        .send(crate::broker::Command::Status { reply })
        .await
        .is_err()
    {
        return;
    }
    let Ok(snapshot) = answer.await else {
        return;
    };
    for client in snapshot.clients {
        let Some(name) = client.client_id.strip_prefix(local::LOCAL_CLIENT_PREFIX) else {
            continue;
        };
        if client.connected || configs.iter().any(|c| c.name == name) {
            continue;
        }
        tracing::warn!(
            "bridge {name}: no longer configured; discarding its local session and the {} \
             message(s) it held for the remote broker",
            client.queued + client.inflight
        );
        let _ = local::retire(name, broker).await;
    }
}

/// Attaches every bridge to the core and starts its task on `tasks`.
pub async fn spawn_bridges(
    configs: &[BridgeConfig],
    broker: &BrokerHandle,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) -> Result<Vec<BridgeHandle>, BridgeError> {
    let mut handles = Vec::with_capacity(configs.len());
    for c in configs {
        handles.push(spawn_bridge(c, broker, shutdown, tasks).await?);
    }
    Ok(handles)
}

/// Attaches one bridge to the core and starts its task on `tasks`; it stops
/// with `shutdown` or with [`BridgeHandle::stop`].
pub async fn spawn_bridge(
    c: &BridgeConfig,
    broker: &BrokerHandle,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) -> Result<BridgeHandle, BridgeError> {
    let (rules, connector) = prepare(c)?;
    let cancel = shutdown.child_token();
    let version = codec_version(c.protocol_version);
    let conn = ConnId::next();
    let (outbox, local_rx) = Outbox::channel();
    local::attach(c, &rules, broker, conn, &outbox)
        .await
        .map_err(|e| BridgeError::Core(c.name.clone(), e))?;
    let limits = QueueLimits {
        max_qos0: usize::try_from(c.max_queued_qos0).unwrap_or(usize::MAX),
        max_qos0_bytes: usize::try_from(c.max_queued_bytes).unwrap_or(usize::MAX),
    };
    info!(
        "bridge {}: starting; remote {} (MQTT {}), {} topic rule(s)",
        c.name,
        c.addresses.join(", "),
        if version.is_v5() { "5" } else { "3.1.1" },
        rules.len()
    );
    let task = BridgeTask {
        name: Arc::from(c.name.as_str()),
        addresses: c.addresses.clone().into(),
        connect: connect_packet(c, version),
        try_private: c.try_private && !version.is_v5(),
        rules,
        connector,
        connect_timeout: Duration::from_secs(c.connect_timeout),
        primary_retry: Duration::from_secs(c.primary_retry),
        state_topic: c.notifications.then(|| Arc::from(state_topic(c))),
        notify_remote: c.notifications_remote,
        broker: broker.clone(),
        conn,
        outbox,
        local_rx,
        queue: OutQueue::new(limits),
        session: UpstreamSession::new(version, c.max_inflight),
        backoff: Backoff::new(
            Duration::from_secs(c.reconnect_min),
            Duration::from_secs(c.reconnect_max),
        ),
        shutdown: cancel.clone(),
    };
    let done = tasks.spawn(task.run());
    Ok(BridgeHandle {
        config: c.clone(),
        cancel,
        done,
        broker: broker.clone(),
    })
}
