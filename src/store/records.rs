//! The durable records: plain owned data, times as wall-clock unix milliseconds
//! (an `Instant` means nothing after a restart).

use bytes::Bytes;

/// An application message as stored: a retained message, a will, or a queued delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// Topic name.
    pub topic: String,
    /// Payload bytes.
    pub payload: Bytes,
    /// QoS 0, 1 or 2.
    pub qos: u8,
    /// Retain flag.
    pub retain: bool,
    /// MQTT 5 properties that travel with the message.
    pub properties: Option<PropertiesRecord>,
    /// When the message expires (unix ms), if ever.
    pub expires_at_ms: Option<u64>,
    /// Client id of the publisher, if known (since record format 2).
    pub publisher: Option<String>,
}

/// MQTT 5 publish properties passed through by the broker (MQTT 5 §3.3.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PropertiesRecord {
    /// Payload Format Indicator: true when the payload is UTF-8.
    pub payload_format_utf8: Option<bool>,
    /// Content Type.
    pub content_type: Option<String>,
    /// Response Topic.
    pub response_topic: Option<String>,
    /// Correlation Data.
    pub correlation_data: Option<Bytes>,
    /// User Properties, in order.
    pub user_properties: Vec<(String, String)>,
}

/// One subscription of a persistent session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    /// Topic filter, possibly `$share/group/filter`.
    pub filter: String,
    /// Maximum QoS.
    pub qos: u8,
    /// MQTT 5 No Local.
    pub no_local: bool,
    /// MQTT 5 Retain As Published.
    pub retain_as_published: bool,
    /// MQTT 5 Retain Handling (0, 1 or 2).
    pub retain_handling: u8,
    /// MQTT 5 Subscription Identifier.
    pub subscription_id: Option<u32>,
}

/// A will message and its MQTT 5 Will Delay Interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WillRecord {
    /// The will message.
    pub message: MessageRecord,
    /// Will Delay Interval in seconds.
    pub delay_secs: u32,
}

/// A persistent session (clean session 0 / session expiry > 0), without its queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Client identifier; the record's key.
    pub client_id: String,
    /// Protocol of the last connection, as the broker numbers it (opaque to the store).
    pub kind: u8,
    /// User name of the last connection.
    pub username: Option<String>,
    /// Session expiry interval in seconds (`u32::MAX` = never).
    pub expiry_secs: u32,
    /// When an offline session ends (unix ms); `None` while online or when it never expires.
    pub expires_at_ms: Option<u64>,
    /// Subscriptions.
    pub subscriptions: Vec<SubscriptionRecord>,
    /// The will of the attached connection.
    pub will: Option<WillRecord>,
    /// When a delayed will is due (unix ms), if one is waiting.
    pub will_due_ms: Option<u64>,
}

/// Where a queued delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueState {
    /// Not yet sent.
    Queued,
    /// QoS 1 sent with this packet id, awaiting PUBACK.
    AwaitPubAck {
        /// Packet identifier used.
        packet_id: u16,
    },
    /// QoS 2 sent with this packet id, awaiting PUBREC.
    AwaitPubRec {
        /// Packet identifier used.
        packet_id: u16,
    },
    /// PUBREL sent for this packet id, awaiting PUBCOMP.
    AwaitPubComp {
        /// Packet identifier used.
        packet_id: u16,
    },
}

/// One QoS 1/2 delivery owed to a persistent session, keyed by (client id, seq).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    /// Position in the session's queue; entries load sorted by it.
    pub seq: u64,
    /// The message, stored inline per session.
    pub message: MessageRecord,
    /// Subscription identifiers to send with it.
    pub subscription_ids: Vec<u32>,
    /// Delivery state.
    pub state: QueueState,
}

/// An MQTT-SN sensor's registered topic ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnTopicsRecord {
    /// The sensor's client id; the record's key.
    pub client_id: String,
    /// Topic id to topic name.
    pub topics: Vec<(u16, String)>,
}
