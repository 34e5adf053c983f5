//! The local side of a bridge task: the bridge's persistent session in the
//! broker core. Deliveries to it are what goes out; they are acknowledged to
//! the core only once the remote broker has acknowledged them, so the core's
//! session queue (durable when persistence is on) is the store-and-forward
//! queue. What comes in from the remote is published through it.

use std::sync::Arc;

use bytes::Bytes;
use tracing::{debug, error, info, warn};

use super::queue::{LocalAck, Seq};
use super::rules::{OutRoute, TopicRule, route_out};
use super::task::{Run, worth_logging};
use crate::broker::{
    BrokerClosed, BrokerHandle, ClientKind, Command, ConnId, ConnectRequest, Delivery,
    DisconnectKind, Message, Outbound, Outbox, PublishOutcome, SessionLimits, SubscribeRequest,
    SubscribeResult, SubscriptionOptions,
};
use crate::config::BridgeConfig;
use crate::mqtt::codec::{Packet, Publish, ReasonCode};
use crate::qos::QoS;

/// How long the bridge's local session outlives sngate being stopped (or
/// the bridge being removed from the configuration): 30 days.
pub const LOCAL_SESSION_EXPIRY: u32 = 30 * 24 * 3600;

/// What a bridge's client id in the broker core starts with.
pub const LOCAL_CLIENT_PREFIX: &str = "$bridge/";

/// The client id of a bridge's session in the broker core.
pub fn local_client_id(name: &str) -> String {
    format!("{LOCAL_CLIENT_PREFIX}{name}")
}

/// Attaches the bridge's persistent session to the core and subscribes to
/// its out rules. The session's queue is bounded by the bridge's
/// `max_queued` / `max_queued_bytes`, its window by `max_inflight`.
pub async fn attach(
    config: &BridgeConfig,
    rules: &[TopicRule],
    broker: &BrokerHandle,
    conn: ConnId,
    outbox: &Outbox,
) -> Result<(), BrokerClosed> {
    let limits = SessionLimits {
        max_queued: usize::try_from(config.max_queued).unwrap_or(usize::MAX),
        max_inflight: config.max_inflight,
        max_queued_bytes: usize::try_from(config.max_queued_bytes).unwrap_or(usize::MAX),
        // A remote outage can last for hours: slowing every local publisher
        // for it would stall the site. A full bridge queue drops new MQTT
        // messages (counted, logged) and answers MQTT-SN sensors "congestion".
        overflow: false,
    };
    broker
        .send(Command::Connect(ConnectRequest {
            conn,
            client_id: Arc::from(local_client_id(&config.name)),
            // Kept across restarts: what the remote has not acknowledged is
            // still in this session when sngate comes back.
            clean_start: false,
            session_expiry: LOCAL_SESSION_EXPIRY,
            will: None,
            receive_maximum: config.max_inflight,
            username: None,
            kind: ClientKind::Bridge,
            outbox: outbox.clone(),
            queue_limits: Some(limits),
        }))
        .await?;
    drop_stale_filters(config, rules, broker, conn).await?;
    let filters: Vec<SubscribeRequest> = rules
        .iter()
        .filter(|r| r.is_out())
        .map(|r| SubscribeRequest {
            filter: Arc::from(r.local_filter()),
            options: SubscriptionOptions {
                qos: r.qos,
                // What the bridge itself publishes locally (from the remote)
                // must not go back out: that is the local half of loop prevention.
                no_local: true,
                retain_as_published: true,
                retain_handling: 0,
            },
        })
        .collect();
    if !filters.is_empty() {
        broker
            .send(Command::Subscribe {
                conn,
                packet_id: 1,
                filters,
                subscription_id: None,
            })
            .await?;
    }
    Ok(())
}

/// Unsubscribes the session from filters of out rules that are no longer
/// configured (the session outlives config changes), so messages nobody
/// forwards stop piling up in it.
async fn drop_stale_filters(
    config: &BridgeConfig,
    rules: &[TopicRule],
    broker: &BrokerHandle,
    conn: ConnId,
) -> Result<(), BrokerClosed> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    broker.send(Command::Filters { conn, reply }).await?;
    let Ok(existing) = answer.await else {
        return Ok(());
    };
    let wanted: Vec<String> = rules
        .iter()
        .filter(|r| r.is_out())
        .map(|r| r.local_filter())
        .collect();
    let stale: Vec<Arc<str>> = existing
        .into_iter()
        .filter(|f| !wanted.iter().any(|w| w.as_str() == &**f))
        .collect();
    if stale.is_empty() {
        return Ok(());
    }
    info!(
        "bridge {}: unsubscribing from {} filter(s) of rules no longer configured: {}",
        config.name,
        stale.len(),
        stale.iter().map(|f| &**f).collect::<Vec<_>>().join(", ")
    );
    broker
        .send(Command::Unsubscribe {
            conn,
            packet_id: 2,
            filters: stale,
        })
        .await
}

/// Ends the local session of a bridge that is no longer configured: a clean
/// start with no expiry replaces it and the disconnect discards it, with
/// whatever it still held for the remote broker.
pub async fn retire(name: &str, broker: &BrokerHandle) -> Result<(), BrokerClosed> {
    let conn = ConnId::next();
    let (outbox, _rx) = Outbox::channel();
    broker
        .send(Command::Connect(ConnectRequest {
            conn,
            client_id: Arc::from(local_client_id(name)),
            clean_start: true,
            session_expiry: 0,
            will: None,
            receive_maximum: 1,
            username: None,
            kind: ClientKind::Bridge,
            outbox,
            queue_limits: None,
        }))
        .await?;
    broker
        .send(Command::Disconnect {
            conn,
            kind: DisconnectKind::Graceful {
                publish_will: false,
                session_expiry: None,
            },
        })
        .await
}

impl Run {
    pub(super) async fn publish_state(&mut self, up: bool) {
        let Some(topic) = self.t.state_topic.clone() else {
            return;
        };
        let payload = Bytes::from_static(if up { b"1" } else { b"0" });
        let message = Message::new(topic.clone(), payload.clone(), QoS::AtLeastOnce, true);
        let _ = self
            .t
            .broker
            .send(Command::PublishInternal { message })
            .await;
        if up && self.t.notify_remote {
            self.send(Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: true,
                topic,
                packet_id: None,
                properties: Default::default(),
                payload,
            }))
            .await;
        }
    }

    pub(super) async fn tell_core(&mut self, command: Command) -> bool {
        self.t.broker.send(command).await.is_ok()
    }

    pub(super) async fn on_local(&mut self, ev: Outbound) -> bool {
        let conn = self.t.conn;
        match ev {
            Outbound::ConnAck { .. } => {}
            Outbound::Deliver(d) => {
                self.t.outbox.delivered();
                return self.on_delivery(d).await;
            }
            Outbound::PubRel { packet_id } => {
                return self.tell_core(Command::PubComp { conn, packet_id }).await;
            }
            // Answers to what the bridge published locally on the remote's behalf.
            Outbound::PubAck { packet_id, outcome } => {
                let reason = local_reason(outcome);
                self.send_ack(Packet::PubAck, packet_id, reason).await;
            }
            Outbound::PubRec { packet_id, outcome } => {
                let reason = local_reason(outcome);
                self.send_ack(Packet::PubRec, packet_id, reason).await;
            }
            Outbound::PubComp { packet_id, .. } => {
                self.send_ack(Packet::PubComp, packet_id, ReasonCode::Success)
                    .await;
            }
            Outbound::SubAck { results, .. } => {
                for (rule, result) in self.t.rules.iter().filter(|r| r.is_out()).zip(results) {
                    if !matches!(result, SubscribeResult::Granted(_)) {
                        error!(
                            "bridge {}: local subscription to {:?} refused: {result:?}",
                            self.t.name,
                            rule.local_filter()
                        );
                    }
                }
            }
            Outbound::UnsubAck { .. } => {}
            Outbound::Disconnect(why) => {
                debug!(
                    "bridge {}: the local broker ends the bridge: {why:?}",
                    self.t.name
                );
                return false;
            }
        }
        true
    }

    /// A delivery from the core: queued for the remote with the
    /// acknowledgement it is owed, or acknowledged at once when it does not go out.
    async fn on_delivery(&mut self, d: Delivery) -> bool {
        let ack = match (d.message.qos, d.packet_id) {
            (QoS::AtMostOnce, _) | (_, None) => None,
            (qos, Some(packet_id)) => Some(LocalAck { packet_id, qos }),
        };
        let publisher = d.message.publisher.clone();
        match route_out(&self.t.rules, &d.message.topic, publisher.as_deref()) {
            OutRoute::To(rule, remote) => {
                let mut message = d.message;
                message.topic = Arc::from(remote);
                message.retain = message.retain && rule.retain;
                self.enqueue(message, ack);
                true
            }
            OutRoute::Unnamed(rule) => {
                self.unnamed += 1;
                // A `{client_id}` rule has nothing to name a message of the
                // broker itself with; it is not sent rather than misfiled.
                debug!(
                    "bridge {}: {:?} matches {:?} but names no remote topic (publisher: {:?}); not forwarded ({} so far)",
                    self.t.name,
                    d.message.topic,
                    rule.local_filter(),
                    publisher,
                    self.unnamed
                );
                self.ack_local(ack).await
            }
            // A subscription left from an earlier configuration of this session.
            OutRoute::NoRule => self.ack_local(ack).await,
        }
    }

    fn enqueue(&mut self, message: Message, ack: Option<LocalAck>) {
        let dropped = self.t.queue.push(message, ack);
        if dropped == 0 {
            return;
        }
        let before = self.dropped_qos0;
        self.dropped_qos0 += dropped as u64;
        if (before + 1..=self.dropped_qos0).any(worth_logging) {
            warn!(
                "bridge {}: QoS 0 queue bound reached ({} waiting), oldest QoS 0 messages dropped ({} so far)",
                self.t.name,
                self.t.queue.qos0_waiting(),
                self.dropped_qos0
            );
        }
    }

    /// The remote is done with queue entry `seq`: the core may forget it.
    pub(super) async fn finish(&mut self, seq: Seq) {
        let ack = self.t.queue.ack(seq);
        self.ack_local(ack).await;
    }

    async fn ack_local(&mut self, ack: Option<LocalAck>) -> bool {
        let conn = self.t.conn;
        let command = match ack {
            None => return true,
            Some(LocalAck {
                packet_id,
                qos: QoS::ExactlyOnce,
            }) => Command::PubRec { conn, packet_id },
            Some(LocalAck { packet_id, .. }) => Command::PubAck { conn, packet_id },
        };
        self.tell_core(command).await
    }
}

fn local_reason(outcome: PublishOutcome) -> ReasonCode {
    match outcome {
        PublishOutcome::Delivered => ReasonCode::Success,
        PublishOutcome::NoMatchingSubscribers => ReasonCode::NoMatchingSubscribers,
        PublishOutcome::NotAuthorized => ReasonCode::NotAuthorized,
        PublishOutcome::QuotaExceeded => ReasonCode::QuotaExceeded,
    }
}
