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
