//! Limits and switches a connection's protocol state needs from `[broker]`.

use std::time::Duration;

/// Per-connection protocol settings (mapped from `[broker]` in the config).
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Largest keep-alive a client may use; 65535 also allows 0 (off).
    pub max_keepalive: u16,
    /// Largest packet accepted from a client, in bytes.
    pub max_packet_size: u32,
    /// Topic Alias Maximum advertised to MQTT 5 clients.
    pub max_topic_alias: u16,
    /// Receive Maximum advertised to MQTT 5 clients (unacknowledged QoS 1/2 publishes).
    pub receive_maximum: u16,
    /// Whether retained messages are supported.
    pub retain_available: bool,
    /// Whether a client may connect with an empty client id and get one assigned.
    pub allow_zero_length_clientid: bool,
    /// Time a new connection has to send CONNECT.
    pub connect_timeout: Duration,
}

impl Default for SessionSettings {
    fn default() -> SessionSettings {
        SessionSettings {
            max_keepalive: 65535,
            max_packet_size: 268_435_456,
            max_topic_alias: 10,
            receive_maximum: 20,
            retain_available: true,
            allow_zero_length_clientid: true,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// The settings a session still reads after it starts, packed into 12 bytes
/// (the connect timeout is spent in [`super::MqttSession::new`]). Kept inline
/// rather than shared: an `Arc` built from the by-value settings `new`
/// receives would cost a heap block per connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// See [`SessionSettings::max_packet_size`].
    pub max_packet_size: u32,
    /// See [`SessionSettings::max_keepalive`].
    pub max_keepalive: u16,
    /// See [`SessionSettings::max_topic_alias`].
    pub max_topic_alias: u16,
    /// See [`SessionSettings::receive_maximum`].
    pub receive_maximum: u16,
    /// See [`SessionSettings::retain_available`].
    pub retain_available: bool,
    /// See [`SessionSettings::allow_zero_length_clientid`].
    pub allow_zero_length_clientid: bool,
}

impl From<&SessionSettings> for Limits {
    fn from(s: &SessionSettings) -> Limits {
        Limits {
            max_packet_size: s.max_packet_size,
            max_keepalive: s.max_keepalive,
            max_topic_alias: s.max_topic_alias,
            receive_maximum: s.receive_maximum,
            retain_available: s.retain_available,
            allow_zero_length_clientid: s.allow_zero_length_clientid,
        }
    }
}
