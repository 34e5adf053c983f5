//! The vocabulary between the broker core and its clients (MQTT connections,
//! the MQTT-SN gateway, bridges). Nothing here knows a wire format.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::{Notify, mpsc};

use super::message::Message;
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

/// The sending half of a connection's outbound queue.
///
/// The channel itself is unbounded so that the core never waits on a slow
/// consumer; memory is bounded instead by the core's accounting: QoS 1/2
/// deliveries are limited by the in-flight window, and QoS 0 deliveries are
/// dropped (and counted) once `pending` passes the configured limit. The
/// connection decrements `pending` as it writes deliveries out.
///
/// The outbox also carries the connection's back-pressure state: the core
/// blocks a publisher whose QoS 1/2 messages fill a subscriber's queue, and
/// the connection stops reading its socket until [`Outbox::unblocked`].
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<(ConnId, Outbound)>,
    shared: Arc<OutboxShared>,
}

/// State shared between the core's side of an outbox and its connection.
#[derive(Debug, Default)]
struct OutboxShared {
    pending: AtomicUsize,
    /// Subscriber sessions over their queue bound because of this publisher.
    blockers: AtomicUsize,
    resume: Notify,
}

/// The receiving half paired with an [`Outbox`].
pub type OutboxReceiver = mpsc::UnboundedReceiver<(ConnId, Outbound)>;

impl Outbox {
    /// A new outbox with its own channel (one per MQTT connection).
    pub fn channel() -> (Outbox, OutboxReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Outbox::with_sender(tx), rx)
    }

    /// An outbox on a shared channel (the gateway multiplexes many sensors on one).
    pub fn with_sender(tx: mpsc::UnboundedSender<(ConnId, Outbound)>) -> Outbox {
        Outbox {
            tx,
            shared: Arc::default(),
        }
    }

    /// Sends an event; returns false if the connection is gone.
    pub fn send(&self, conn: ConnId, event: Outbound) -> bool {
        if matches!(event, Outbound::Deliver(_)) {
            self.shared.pending.fetch_add(1, Ordering::Relaxed);
        }
        self.tx.send((conn, event)).is_ok()
    }

    /// Deliveries sent but not yet written by the connection.
    pub fn pending(&self) -> usize {
        self.shared.pending.load(Ordering::Relaxed)
    }

    /// Called by the connection after it has written (or dropped) one delivery.
    pub fn delivered(&self) {
        // Saturating: a stale outbox must never wrap around.
        let _ = self
            .shared
            .pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// True when the receiving side has gone away.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// One more subscriber queue is over its bound because of this
    /// publisher: its connection should stop reading until unblocked.
    pub fn block(&self) {
        self.shared.blockers.fetch_add(1, Ordering::Relaxed);
    }

    /// One subscriber queue that blocked this publisher has drained (or gone).
    pub fn unblock(&self) {
        let before = self
            .shared
            .blockers
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if before == Ok(1) {
            self.shared.resume.notify_waiters();
        }
    }

    /// True while some subscriber queue is over its bound because of this publisher.
    pub fn is_blocked(&self) -> bool {
        self.shared.blockers.load(Ordering::Relaxed) > 0
    }

    /// Waits until no subscriber queue blocks this publisher.
    pub async fn unblocked(&self) {
        loop {
            let notified = self.shared.resume.notified();
            tokio::pin!(notified);
            // Registered before the check, so an unblock in between is not missed.
            notified.as_mut().enable();
            if !self.is_blocked() {
                return;
            }
            notified.await;
        }
    }
}

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
    /// Answer with a read-only snapshot (HTTP status, metrics).
    Status {
        /// Where the snapshot goes.
        reply: tokio::sync::oneshot::Sender<super::status::StatusSnapshot>,
    },
}
