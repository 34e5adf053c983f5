//! The vocabulary between the broker core and its clients (MQTT connections,
//! the MQTT-SN gateway, bridges). Nothing here knows a wire format.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::message::Message;
use super::session::SessionLimits;
use crate::qos::QoS;

/// Identifies one connection (not one session): a reconnecting client gets a
/// new `ConnId` and takes over its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

impl ConnId {
    /// A process-unique connection id.
    pub fn next() -> ConnId {
        ConnId(NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed))
    }
}

/// Which protocol a client speaks; used for logs, `$SYS` and limits only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKind {
    /// MQTT 3.1 or 3.1.1.
    Mqtt3,
    /// MQTT 5.0.
    Mqtt5,
    /// An MQTT-SN sensor behind the gateway.
    MqttSn,
    /// A bridge to another broker.
    Bridge,
    /// The broker itself ($SYS publisher).
    Internal,
}

/// A last will (MQTT 3.1.1 §3.1.2.5, MQTT 5 §3.1.3.2, MQTT-SN 1.2 §6.3).
#[derive(Debug, Clone, PartialEq)]
pub struct Will {
    /// The will message.
    pub message: Message,
    /// MQTT 5 Will Delay Interval in seconds (0 for other protocols).
    pub delay: u32,
}

/// Session expiry in seconds: 0 ends the session with the connection,
/// `u32::MAX` never expires (MQTT 5 §3.1.2.11.2). A 3.1.1 clean-session-0
/// client maps to `u32::MAX`.
pub type SessionExpiry = u32;

/// What a client asks for when it connects.
#[derive(Debug)]
pub struct ConnectRequest {
    /// The new connection.
    pub conn: ConnId,
    /// Client identifier (already assigned by the protocol layer if the client sent none).
    pub client_id: Arc<str>,
    /// Clean Start / Clean Session: discard any existing session.
    pub clean_start: bool,
    /// Session expiry interval.
    pub session_expiry: SessionExpiry,
    /// Last will, if any.
    pub will: Option<Will>,
    /// How many QoS 1/2 deliveries may be unacknowledged at once (Receive Maximum).
    pub receive_maximum: u16,
    /// Authenticated user name, if any.
    pub username: Option<Arc<str>>,
    /// Protocol, for logs and statistics.
    pub kind: ClientKind,
    /// Where the core sends this connection's outbound events.
    pub outbox: Outbox,
    /// Queue limits of this session instead of the broker-wide ones (a
    /// bridge bounds its store-and-forward queue with its own settings).
    pub queue_limits: Option<SessionLimits>,
}

/// MQTT 5 subscription options (MQTT 5 §3.8.3.1); 3.1.1 uses only `qos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscriptionOptions {
    /// Maximum QoS for deliveries on this subscription.
    pub qos: QoS,
    /// Do not deliver messages published by this same client.
    pub no_local: bool,
    /// Keep the retain flag of forwarded messages as published.
    pub retain_as_published: bool,
    /// 0: send retained on subscribe; 1: only if the subscription is new; 2: never.
    pub retain_handling: u8,
}

/// One filter of a SUBSCRIBE.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscribeRequest {
    /// Topic filter, already validated by the protocol layer; may be `$share/group/filter`.
    pub filter: Arc<str>,
    /// Options.
    pub options: SubscriptionOptions,
}

/// The core's answer for one filter of a SUBSCRIBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeResult {
    /// Granted at this QoS.
    Granted(QoS),
    /// Refused because the client is not authorised.
    NotAuthorized,
    /// Refused because a limit was reached.
    QuotaExceeded,
    /// Refused: the filter form is not supported (e.g. shared subscriptions off).
    NotSupported,
    /// Refused for another reason.
    Failed,
}

/// The core's answer for one filter of an UNSUBSCRIBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsubscribeResult {
    /// The subscription existed and was removed.
    Removed,
    /// There was no such subscription.
    NoSubscriptionExisted,
}

/// What happened to a client's QoS 1/2 publish, for PUBACK/PUBREC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Accepted and routed to at least one subscriber.
    Delivered,
    /// Accepted, but nobody was subscribed (MQTT 5 reason 0x10).
    NoMatchingSubscribers,
    /// Refused by the ACL (MQTT 5 reason 0x87).
    NotAuthorized,
    /// Refused because storage or a quota is exhausted (MQTT 5 reason 0x97).
    QuotaExceeded,
}

impl PublishOutcome {
    /// True when the message was accepted.
    pub fn is_success(self) -> bool {
        matches!(
            self,
            PublishOutcome::Delivered | PublishOutcome::NoMatchingSubscribers
        )
    }
}

/// Why the core ends a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerDisconnect {
    /// Another connection took over the session (MQTT 5 reason 0x8E).
    SessionTakenOver,
    /// The broker is shutting down (MQTT 5 reason 0x8B).
    ShuttingDown,
    /// The client exceeded the Receive Maximum the broker advertised (0x93).
    ReceiveMaximumExceeded,
}

/// A message delivered to a client.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Packet id for QoS 1/2; `None` for QoS 0.
    pub packet_id: Option<u16>,
    /// The message; `message.qos` is the granted QoS, `message.retain` the flag to send.
    pub message: Message,
    /// DUP: this is a redelivery.
    pub dup: bool,
    /// Subscription identifiers of every matching subscription (MQTT 5).
    pub subscription_ids: Vec<u32>,
}

/// Events the core sends to a connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    /// The session is attached; `session_present` tells whether state was kept.
    ConnAck {
        /// Whether the session already existed.
        session_present: bool,
    },
    /// Deliver an application message.
    Deliver(Delivery),
    /// Acknowledge the client's QoS 1 publish.
    PubAck {
        /// Packet id.
        packet_id: u16,
        /// Outcome.
        outcome: PublishOutcome,
    },
    /// Acknowledge the client's QoS 2 publish (step 1).
    PubRec {
        /// Packet id.
        packet_id: u16,
        /// Outcome.
        outcome: PublishOutcome,
    },
    /// Complete the client's QoS 2 publish (step 3); `found` is false if the
    /// packet id was unknown (MQTT 5 reason 0x92).
    PubComp {
        /// Packet id.
        packet_id: u16,
        /// Whether the packet id was known.
        found: bool,
    },
    /// Release a QoS 2 delivery the client has PUBREC'd.
    PubRel {
        /// Packet id.
        packet_id: u16,
    },
    /// Answer to a SUBSCRIBE, one result per filter in order.
    SubAck {
        /// Packet id.
        packet_id: u16,
        /// Results.
        results: Vec<SubscribeResult>,
    },
    /// Answer to an UNSUBSCRIBE.
    UnsubAck {
        /// Packet id.
        packet_id: u16,
        /// Results.
        results: Vec<UnsubscribeResult>,
    },
    /// The core ends this connection.
    Disconnect(ServerDisconnect),
}

pub use super::outbox::{Outbox, OutboxQueue, OutboxReceiver};

/// Why a connection ended, as told to the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectKind {
    /// DISCONNECT received: no will (unless MQTT 5 reason 0x04 asked for it).
    Graceful {
        /// Publish the will anyway (MQTT 5 reason 0x04).
        publish_will: bool,
        /// New session expiry from an MQTT 5 DISCONNECT, if given.
        session_expiry: Option<SessionExpiry>,
    },
    /// Socket closed, keep-alive expired, protocol error: the will is published.
    Abnormal,
}

/// Commands from connections to the core.
#[derive(Debug)]
pub enum Command {
    /// Attach a session.
    Connect(ConnectRequest),
    /// A client publishes; `packet_id` is set for QoS 1/2.
    Publish {
        /// Connection.
        conn: ConnId,
        /// Packet id for QoS 1/2.
        packet_id: Option<u16>,
        /// The message.
        message: Message,
    },
    /// The client acknowledged a QoS 1 delivery.
    PubAck {
        /// Connection.
        conn: ConnId,
        /// Packet id.
        packet_id: u16,
    },
    /// The client received a QoS 2 delivery.
    PubRec {
        /// Connection.
        conn: ConnId,
        /// Packet id.
        packet_id: u16,
    },
    /// The client completed a QoS 2 delivery.
    PubComp {
        /// Connection.
        conn: ConnId,
        /// Packet id.
        packet_id: u16,
    },
    /// The client releases its own QoS 2 publish.
    PubRel {
        /// Connection.
        conn: ConnId,
        /// Packet id.
        packet_id: u16,
    },
    /// Subscribe.
    Subscribe {
        /// Connection.
        conn: ConnId,
        /// Packet id.
        packet_id: u16,
        /// Filters with options.
        filters: Vec<SubscribeRequest>,
        /// MQTT 5 Subscription Identifier.
        subscription_id: Option<u32>,
    },
    /// Unsubscribe.
    Unsubscribe {
        /// Connection.
        conn: ConnId,
        /// Packet id.
        packet_id: u16,
        /// Filters.
        filters: Vec<Arc<str>>,
    },
    /// Replace (or with `None`, remove) the will (MQTT-SN WILLTOPICUPD/WILLMSGUPD).
    SetWill {
        /// Connection.
        conn: ConnId,
        /// New will.
        will: Option<Will>,
    },
    /// The connection ended.
    Disconnect {
        /// Connection.
        conn: ConnId,
        /// How.
        kind: DisconnectKind,
    },
    /// Publish a message on behalf of the broker itself (no session).
    PublishInternal {
        /// The message.
        message: Message,
    },
    /// Keep an MQTT-SN sensor's registered topic ids with its persistent
    /// session (the whole table; empty forgets it). Ignored without persistence.
    PersistSensorTopics {
        /// The sensor's client id.
        client_id: Arc<str>,
        /// Topic id to topic name.
        topics: Vec<(u16, Arc<str>)>,
    },
    /// Answer with the topic filters of the connection's session (a bridge
    /// drops the subscriptions of rules no longer in its configuration).
    Filters {
        /// Connection.
        conn: ConnId,
        /// Where the filters go (empty without a session).
        reply: tokio::sync::oneshot::Sender<Vec<Arc<str>>>,
    },
    /// Answer with a read-only snapshot (HTTP status, metrics).
    Status {
        /// Where the snapshot goes.
        reply: tokio::sync::oneshot::Sender<super::status::StatusSnapshot>,
    },
}
