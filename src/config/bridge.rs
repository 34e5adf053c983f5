//! `[[bridge]]`: connections to upstream MQTT brokers and the topics they carry.

use std::path::PathBuf;

use serde::Deserialize;

use super::de::{qos, ranged};
use super::gateway::ProtocolVersion;
use crate::qos::QoS;

/// One `[[bridge]]` to a remote broker.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    /// Name used in logs, metrics and the store; unique among bridges.
    pub name: String,
    /// `"host:port"` addresses, tried in order.
    pub addresses: Vec<String>,
    /// MQTT version spoken to the remote broker.
    #[serde(default)]
    pub protocol_version: ProtocolVersion,
    /// Client id at the remote broker; absent = `sngate-bridge-<name>`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Remote username.
    #[serde(default)]
    pub username: Option<String>,
    /// Remote password.
    #[serde(default)]
    pub password: Option<String>,
    /// Whether the remote session is discarded on connect; false keeps remote subscriptions and queues.
    #[serde(default)]
    pub clean_start: bool,
    /// Keep-alive sent to the remote broker, seconds.
    #[serde(
        default = "default_keepalive",
        deserialize_with = "ranged::<_, _, 0, 65535>"
    )]
    pub keepalive: u16,
    /// TLS to the remote broker; absent = plain TCP.
    #[serde(default)]
    pub tls: Option<BridgeTlsConfig>,
    /// Topics carried, in either direction.
    #[serde(default)]
    pub topics: Vec<BridgeTopicConfig>,
    /// First reconnect delay, seconds; doubles up to `reconnect_max`.
    #[serde(
        default = "default_reconnect_min",
        deserialize_with = "ranged::<_, _, 1, 86400>"
    )]
    pub reconnect_min: u64,
    /// Longest reconnect delay, seconds.
    #[serde(
        default = "default_reconnect_max",
        deserialize_with = "ranged::<_, _, 1, 86400>"
    )]
    pub reconnect_max: u64,
}

impl BridgeConfig {
    /// The client id used at the remote broker.
    pub fn effective_client_id(&self) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("sngate-bridge-{}", self.name))
    }
}

fn default_keepalive() -> u16 {
    60
}

fn default_reconnect_min() -> u64 {
    1
}

fn default_reconnect_max() -> u64 {
    60
}

/// `tls = { ... }` of a bridge.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeTlsConfig {
    /// PEM CA bundle the remote certificate must chain to; absent = the system's roots.
    pub cafile: Option<PathBuf>,
    /// PEM client certificate chain.
    pub certfile: Option<PathBuf>,
    /// PEM private key of `certfile`.
    pub keyfile: Option<PathBuf>,
    /// Skip verification of the remote certificate (testing only).
    pub insecure: bool,
    /// ALPN protocol names offered, e.g. `["x-amzn-mqtt-ca"]`.
    pub alpn: Vec<String>,
}

/// Which way a bridged topic flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BridgeDirection {
    /// Remote → local.
    In,
    /// Local → remote.
    #[default]
    Out,
    /// Both ways.
    Both,
}

/// One entry of a bridge's `topics`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeTopicConfig {
    /// Topic filter, matched after the prefix on its side is removed.
    pub pattern: String,
    /// Which way messages flow.
    #[serde(default)]
    pub direction: BridgeDirection,
    /// QoS of the bridge's subscriptions and forwarded messages.
    #[serde(default, deserialize_with = "qos")]
    pub qos: QoS,
    /// Prefix of the topic on the local broker.
    #[serde(default)]
    pub local_prefix: String,
    /// Prefix of the topic on the remote broker.
    #[serde(default)]
    pub remote_prefix: String,
}
