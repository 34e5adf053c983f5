//! `[log]` and `[broker]`: logging and the limits of the built-in MQTT broker core.

use serde::Deserialize;

use super::de::ranged;

/// `[log]`: how much the process logs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Most verbose level written; `RUST_LOG` overrides it.
    pub level: LogLevel,
}

/// A log verbosity level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Only errors.
    Error,
    /// Errors and warnings.
    Warn,
    /// Errors, warnings and lifecycle events.
    #[default]
    Info,
    /// Adds per-client events.
    Debug,
    /// Adds per-packet events.
    Trace,
}

impl LogLevel {
    /// The name as written in the config and understood by `tracing` filters.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// `[broker]`: limits of the broker core shared by MQTT clients and MQTT-SN sensors.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Largest keep-alive granted, seconds; larger requests are cut down (MQTT 5 Server Keep Alive).
    #[serde(deserialize_with = "ranged::<_, _, 1, 65535>")]
    pub max_keepalive: u16,
    /// Largest MQTT packet accepted, in bytes of the whole packet (MQTT 5 Maximum Packet Size).
    #[serde(deserialize_with = "ranged::<_, _, 2, 268435460>")]
    pub max_packet_size: u32,
    /// `$SYS` publish period in seconds; 0 turns `$SYS` off.
    pub sys_interval: u64,
    /// Per session: messages waiting to be sent (QoS 1/2, and QoS 0 while online).
    #[serde(deserialize_with = "ranged::<_, _, 1, 4294967295>")]
    pub max_queued_messages: usize,
    /// Per session: unacknowledged QoS 1/2 deliveries, also capped by the client's Receive Maximum.
    #[serde(deserialize_with = "ranged::<_, _, 1, 65535>")]
    pub max_inflight_messages: u16,
    /// Seconds a new connection has to send CONNECT before it is closed.
    #[serde(deserialize_with = "ranged::<_, _, 1, 86400>")]
    pub connect_timeout: u64,
    /// Whether retained messages are supported (MQTT 5 Retain Available).
    pub retain_available: bool,
    /// Whether an empty client id is accepted and replaced by a generated one.
    pub allow_zero_length_clientid: bool,
    /// MQTT 5 Topic Alias Maximum advertised to clients; 0 disables aliases.
    pub max_topic_alias: u16,
    /// Simultaneous client connections across all listeners; 0 = unlimited.
    pub max_connections: usize,
    /// Per session: topic and payload bytes of queued messages; 0 = unlimited.
    pub max_queued_bytes: usize,
    /// Per client: subscriptions held at once; 0 = unlimited.
    pub max_subscriptions: usize,
    /// Per connection: PUBLISH packets read per second before reads are slowed; 0 = unlimited.
    pub max_publish_rate: u32,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            max_keepalive: 65535,
            max_packet_size: 268_435_456,
            sys_interval: 10,
            max_queued_messages: 1000,
            max_inflight_messages: 20,
            connect_timeout: 10,
            retain_available: true,
            allow_zero_length_clientid: true,
            max_topic_alias: 10,
            max_connections: 0,
            max_queued_bytes: 0,
            max_subscriptions: 0,
            max_publish_rate: 0,
        }
    }
}
