//! An application message as the broker core sees it: protocol-agnostic.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::qos::QoS;

/// A published application message. Cloning is cheap: the payload is one
/// reference-counted buffer shared by every subscriber.
///
/// Equality compares the message, not its provenance: `publisher` is left
/// out, so the same message published by two clients compares equal.
#[derive(Debug, Clone)]
pub struct Message {
    /// Topic name (never contains wildcards).
    pub topic: Arc<str>,
    /// Payload bytes.
    pub payload: Bytes,
    /// QoS the message was published with (or granted, on delivery).
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// MQTT 5 properties that travel with the message; `None` when there are none.
    pub properties: Option<Arc<MessageProperties>>,
    /// When the message expires (MQTT 5 Message Expiry Interval), if ever.
    pub expires_at: Option<Instant>,
    /// Client id of the session that published it; `None` for messages of
    /// the broker itself (`$SYS`, bridge state). Bridges render it into
    /// `{client_id}` topic templates.
    pub publisher: Option<Arc<str>>,
}

impl PartialEq for Message {
    fn eq(&self, other: &Message) -> bool {
        self.topic == other.topic
            && self.payload == other.payload
            && self.qos == other.qos
            && self.retain == other.retain
            && self.properties == other.properties
            && self.expires_at == other.expires_at
    }
}

impl Message {
    /// A message without properties or expiry.
    pub fn new(topic: impl Into<Arc<str>>, payload: Bytes, qos: QoS, retain: bool) -> Message {
        Message {
            topic: topic.into(),
            payload,
            qos,
            retain,
            properties: None,
            expires_at: None,
            publisher: None,
        }
    }

    /// True once the message expiry interval has passed (MQTT 5 §3.3.2.3.3).
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Remaining expiry interval in whole seconds, as forwarded to a subscriber.
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|at| {
            let left = at.saturating_duration_since(now).as_secs();
            u32::try_from(left).unwrap_or(u32::MAX)
        })
    }
}

/// MQTT 5 publish properties that the broker passes through untouched
/// (MQTT 5 §3.3.2.3). Topic aliases and subscription identifiers are per
/// connection, so they are not here.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MessageProperties {
    /// Payload Format Indicator: true when the payload is UTF-8.
    pub payload_format_utf8: Option<bool>,
    /// Content Type.
    pub content_type: Option<Arc<str>>,
    /// Response Topic.
    pub response_topic: Option<Arc<str>>,
    /// Correlation Data.
    pub correlation_data: Option<Bytes>,
    /// User Properties, in order.
    pub user_properties: Vec<(Arc<str>, Arc<str>)>,
}

impl MessageProperties {
    /// True when no property is set.
    pub fn is_empty(&self) -> bool {
        self == &MessageProperties::default()
    }
}
