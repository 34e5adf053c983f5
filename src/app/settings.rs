//! From the config file to each part's own settings: the broker core, MQTT
//! connections, the MQTT-SN gateway and its access rules, and the store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use super::StartError;
use crate::auth::Authorizer;
use crate::broker::{BrokerSettings, Metrics, Persistence, SyncPolicy};
use crate::config::{Config, SyncMode};
use crate::gateway::{
    GatewayAccess, GatewaySettings, ListenerPolicy, PeerIdentity, PredefinedTopic, SensorAccess,
};
use crate::mqtt::session::SessionSettings;
use crate::store::{RedbStore, Store};

/// Broker core settings from `[broker]`.
pub(super) fn broker_settings(config: &Config) -> BrokerSettings {
    let b = &config.broker;
    BrokerSettings {
        max_queued_messages: b.max_queued_messages,
        max_inflight_messages: b.max_inflight_messages,
        sys_interval: Duration::from_secs(b.sys_interval),
        retain_available: b.retain_available,
        max_queued_bytes: b.max_queued_bytes,
        max_subscriptions: b.max_subscriptions,
    }
}

/// Per-connection MQTT settings from `[broker]`.
pub fn session_settings(config: &Config) -> SessionSettings {
    let b = &config.broker;
    SessionSettings {
        max_keepalive: b.max_keepalive,
        max_packet_size: b.max_packet_size,
        max_topic_alias: b.max_topic_alias,
        receive_maximum: b.max_inflight_messages,
        retain_available: b.retain_available,
        allow_zero_length_clientid: b.allow_zero_length_clientid,
        connect_timeout: Duration::from_secs(b.connect_timeout),
    }
}

/// MQTT-SN gateway settings from `[gateway]`.
pub fn gateway_settings(config: &Config) -> GatewaySettings {
    let g = &config.gateway;
    GatewaySettings {
        gateway_id: g.gateway_id,
        advertise_interval: Duration::from_secs(u64::from(g.advertise_interval)),
        retry_interval: Duration::from_secs(g.retry_interval),
        max_retries: g.max_retries,
        allow_qos_minus_one: g.allow_qos_minus_one,
        max_sensors: g.max_sensors,
        max_topics_per_sensor: g.max_topics_per_sensor,
        max_buffered_messages: g.max_buffered_messages,
        max_message_size: g.max_message_size,
        max_client_id_len: g.max_client_id_len,
        persistent_session_expiry: Duration::from_secs(g.persistent_session_expiry),
        predefined: predefined_topics(config),
        restored_topics: Vec::new(),
    }
}

/// The gateway's predefined topic table from `[[gateway.predefined]]`.
pub fn predefined_topics(config: &Config) -> Vec<PredefinedTopic> {
    config
        .gateway
        .predefined
        .iter()
        .map(|p| PredefinedTopic {
            topic_id: p.topic_id,
            topic: p.topic.clone(),
            client_id: (p.client_id != "*").then(|| p.client_id.clone()),
        })
        .collect()
}

/// Client id → ACL user name: `[gateway] usernames`, then the DTLS
/// identities' bindings, which win (their user name is authenticated).
pub fn sensor_usernames<'a>(
    config: &Config,
    identities: impl IntoIterator<Item = &'a Arc<PeerIdentity>>,
) -> HashMap<String, String> {
    let mut usernames: HashMap<String, String> =
        config.gateway.usernames.clone().into_iter().collect();
    for id in identities {
        if let Some(user) = &id.username {
            usernames.insert(id.client_id.to_string(), user.to_string());
        }
    }
    usernames
}

/// Opens and reads the durable store when `[persistence] enabled`; also
/// returns the sensors' topic ids for the gateway.
#[allow(clippy::type_complexity)] // (store, per-sensor topic tables)
pub(super) fn open_store(
    config: &Config,
) -> Result<(Option<Persistence>, Vec<(String, Vec<(u16, String)>)>), StartError> {
    let p = &config.persistence;
    if !p.enabled {
        return Ok((None, Vec::new()));
    }
    let mut store = RedbStore::open(&p.path, p.max_size)?;
    let snapshot = store.load()?;
    info!(
        "persistence: store {} opened (sync = {})",
        store.path().display(),
        match p.sync {
            SyncMode::Always => "always".to_string(),
            SyncMode::Interval => format!("interval, every {} s", p.sync_interval),
        }
    );
    let topics = snapshot
        .sn_topics
        .iter()
        .map(|t| (t.client_id.clone(), t.topics.clone()))
        .collect();
    let sync = match p.sync {
        SyncMode::Always => SyncPolicy::Always,
        SyncMode::Interval => SyncPolicy::Interval(Duration::from_secs(p.sync_interval.max(1))),
    };
    let persistence = Persistence {
        store: Box::new(store),
        snapshot,
        sync,
    };
    Ok((Some(persistence), topics))
}

/// Sensor admission and ACL from `[gateway]` and `[[gateway.udp]]`.
pub fn gateway_access(
    config: &Config,
    authorizer: Arc<Authorizer>,
    metrics: Arc<Metrics>,
) -> GatewayAccess {
    let g = &config.gateway;
    let usernames = g.usernames.clone().into_iter().collect();
    GatewayAccess {
        sensors: Arc::new(SensorAccess::new(authorizer, usernames)),
        listeners: g
            .udp
            .iter()
            .map(|u| ListenerPolicy {
                allow_client_ids: u.allow_client_ids.clone(),
                allow_networks: u.allow_networks.clone(),
            })
            .collect(),
        max_datagram_rate: g.max_datagram_rate,
        metrics,
    }
}
