//! The gateway's own settings; the configuration layer maps `[gateway]` onto these.

use std::time::Duration;

/// A predefined topic id (MQTT-SN 1.2 §6.7, digest §4.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PredefinedTopic {
    /// The id both sides know in advance; 0x0000 and 0xFFFF are reserved.
    pub topic_id: u16,
    /// The topic name it stands for.
    pub topic: String,
    /// The one client this id is for; `None` makes it valid for every client.
    pub client_id: Option<String>,
}

/// Behaviour and limits of the MQTT-SN gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySettings {
    /// GwId sent in ADVERTISE and GWINFO.
    pub gateway_id: u8,
    /// ADVERTISE period T_ADV; zero turns advertising off.
    pub advertise_interval: Duration,
    /// T_retry for gateway-originated PUBLISH, PUBREL, REGISTER and will prompts.
    pub retry_interval: Duration,
    /// N_retry: retransmissions before the client is considered lost.
    pub max_retries: u32,
    /// Accept QoS −1 publishes (MQTT-SN 1.2 §6.8).
    pub allow_qos_minus_one: bool,
    /// Sessions (connected, asleep or persisted) the gateway keeps at most.
    pub max_sensors: usize,
    /// Normal topic ids one client may hold.
    pub max_topics_per_sensor: usize,
    /// Deliveries held for one client (sleep buffer, REGISTER backlog) and
    /// client QoS 1/2 publishes awaiting the broker's answer.
    pub max_buffered_messages: usize,
    /// Largest datagram the gateway sends; bigger deliveries are abandoned (§6.6, G-68).
    pub max_message_size: usize,
    /// Longest accepted ClientId in octets (G-20).
    pub max_client_id_len: usize,
    /// How long a CleanSession=0 session outlives its client.
    pub persistent_session_expiry: Duration,
    /// Predefined topic ids.
    pub predefined: Vec<PredefinedTopic>,
    /// Normal topic ids of persistent sessions kept by the durable store,
    /// per client id: given back to a sensor that reconnects with
    /// CleanSession=0 after a restart.
    pub restored_topics: Vec<(String, Vec<(u16, String)>)>,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            gateway_id: 1,
            advertise_interval: Duration::ZERO,
            retry_interval: Duration::from_secs(10),
            max_retries: 5,
            allow_qos_minus_one: true,
            max_sensors: 10_000,
            max_topics_per_sensor: 1000,
            max_buffered_messages: 100,
            max_message_size: 65535,
            max_client_id_len: 64,
            persistent_session_expiry: Duration::from_secs(86_400),
            predefined: Vec::new(),
            restored_topics: Vec::new(),
        }
    }
}
