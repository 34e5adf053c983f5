//! Bridges to other MQTT brokers (`[[bridge]]`).
//!
//! A bridge is an ordinary client of the broker core on the local side (it
//! subscribes to its `out` rules and publishes what its `in` rules bring) and
//! an MQTT 3.1.1 or 5 client of the remote broker, over TCP or TLS. Messages
//! going out wait in a [`queue::BridgeQueue`] until the remote acknowledges
//! them, so they survive outages of the remote broker (in memory for now).

pub mod backoff;
pub mod echo;
pub mod link;
pub mod queue;
pub mod rules;
pub mod session;
pub mod task;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::broker::{
    BrokerClosed, BrokerHandle, ClientKind, Command, ConnId, ConnectRequest, Outbox,
    SubscribeRequest, SubscriptionOptions,
};
use crate::config::{BridgeConfig, ProtocolVersion as ConfigVersion};
use crate::mqtt::codec::{Connect, ConnectProperties, LastWill, ProtocolVersion, WillProperties};
use crate::qos::QoS;

use backoff::Backoff;
use queue::{MemoryQueue, QueueLimits};
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
    /// `{client_id}` in a template: the core does not tell bridges who published yet.
    #[error(
        "bridge {name}: topics[{index}]: {{client_id}} in a topic template is not available in this build yet"
    )]
    ClientIdTemplate {
        /// Bridge name.
        name: String,
        /// Index of the rule.
        index: usize,
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
        if rule.uses_client_id() {
            return Err(BridgeError::ClientIdTemplate {
                name: c.name.clone(),
                index,
            });
        }
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
    /// then its local state topic goes to `0`. Waits at most `wait`.
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
            let _ = self.broker.send(Command::PublishInternal { message }).await;
        }
        info!("bridge {}: stopped", self.config.name);
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
    let core_err = |e| BridgeError::Core(c.name.clone(), e);
    broker
        .send(Command::Connect(ConnectRequest {
            conn,
            client_id: Arc::from(format!("$bridge/{}", c.name)),
            clean_start: true,
            session_expiry: 0,
            will: None,
            receive_maximum: u16::MAX,
            username: None,
            kind: ClientKind::Bridge,
            outbox: outbox.clone(),
        }))
        .await
        .map_err(core_err)?;
    let filters: Vec<SubscribeRequest> = rules
        .iter()
        .filter(|r| r.is_out())
        .map(|r| SubscribeRequest {
            filter: Arc::from(r.local_filter()),
            options: SubscriptionOptions {
                qos: r.qos,
                // What the bridge itself publishes locally (from the remote)
                // must not go back out: that is the local half of loop prevention.
                no_local: true,
                retain_as_published: true,
                retain_handling: 0,
            },
        })
        .collect();
    if !filters.is_empty() {
        broker
            .send(Command::Subscribe {
                conn,
                packet_id: 1,
                filters,
                subscription_id: None,
            })
            .await
            .map_err(core_err)?;
    }
    let limits = QueueLimits {
        max_messages: usize::try_from(c.max_queued).unwrap_or(usize::MAX),
        max_bytes: usize::try_from(c.max_queued_bytes).unwrap_or(usize::MAX),
        max_qos0: usize::try_from(c.max_queued_qos0).unwrap_or(usize::MAX),
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
        queue: Box::new(MemoryQueue::new(limits)),
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
