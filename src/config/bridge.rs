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
    /// Addresses tried in order: `"host:port"` or `mqtt(s)://` / `ws(s)://host[:port][/path]` URLs.
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
    /// Session Expiry Interval asked of an MQTT 5 remote broker, seconds;
    /// absent = 0 with `clean_start = true`, one day otherwise.
    #[serde(default)]
    pub session_expiry: Option<u32>,
    /// Publish the link state (`1`/`0`, retained) on the local broker.
    #[serde(default = "default_true")]
    pub notifications: bool,
    /// Also publish the link state on the remote broker, with `0` as the bridge's will.
    #[serde(default)]
    pub notifications_remote: bool,
    /// Topic of the link state; absent = `$SYS/broker/connection/<name>/state`.
    #[serde(default)]
    pub notification_topic: Option<String>,
    /// Announce the bridge to an MQTT 3.1.1 remote (protocol level | 0x80, as
    /// Mosquitto's bridges do) so it does not echo the bridge's own messages back.
    #[serde(default = "default_true")]
    pub try_private: bool,
    /// Most QoS 1/2 messages waiting for the remote behind the `max_inflight` window
    /// (the bridge's session queue in the broker core, durable with persistence).
    #[serde(
        default = "default_max_queued",
        deserialize_with = "ranged::<_, _, 1, 100_000_000>"
    )]
    pub max_queued: u64,
    /// Most topic + payload bytes waiting for the remote (QoS 1/2 queue, and QoS 0 held).
    #[serde(
        default = "default_max_queued_bytes",
        deserialize_with = "ranged::<_, _, 1024, 17_179_869_184>"
    )]
    pub max_queued_bytes: u64,
    /// Most QoS 0 messages held while the remote is down; older ones are dropped first.
    #[serde(
        default = "default_max_queued_qos0",
        deserialize_with = "ranged::<_, _, 0, 100_000_000>"
    )]
    pub max_queued_qos0: u64,
    /// Most QoS 1/2 messages sent to the remote and not yet acknowledged.
    #[serde(
        default = "default_max_inflight",
        deserialize_with = "ranged::<_, _, 1, 65535>"
    )]
    pub max_inflight: u16,
    /// Seconds allowed for TCP, TLS and CONNACK when connecting.
    #[serde(
        default = "default_connect_timeout",
        deserialize_with = "ranged::<_, _, 1, 3600>"
    )]
    pub connect_timeout: u64,
    /// While on a later address, how often (seconds) to check whether the first
    /// is back and return to it; 0 = stay until the link fails.
    #[serde(
        default = "default_primary_retry",
        deserialize_with = "ranged::<_, _, 0, 86400>"
    )]
    pub primary_retry: u64,
}

impl BridgeConfig {
    /// The client id used at the remote broker.
    pub fn effective_client_id(&self) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("sngate-bridge-{}", self.name))
    }
}

fn default_true() -> bool {
    true
}

fn default_max_queued() -> u64 {
    10_000
}

fn default_max_queued_bytes() -> u64 {
    16 * 1024 * 1024
}

fn default_max_queued_qos0() -> u64 {
    100
}

fn default_max_inflight() -> u16 {
    20
}

fn default_connect_timeout() -> u64 {
    10
}

fn default_primary_retry() -> u64 {
    60
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
    /// Template of the remote topic for `out` rules: `{1}`, `{2}`… are the
    /// levels the pattern's wildcards matched, `{client_id}` the publisher.
    #[serde(default)]
    pub remote_topic: Option<String>,
    /// Template of the local topic for `in` rules (same placeholders).
    #[serde(default)]
    pub local_topic: Option<String>,
    /// Keep the retain flag of forwarded messages; false forwards them unretained.
    #[serde(default = "default_true")]
    pub retain: bool,
}
