//! How broker-core events become packets for this connection: CONNACK,
//! deliveries (topic aliases, Maximum Packet Size, ACL on read), acks and
//! server-initiated DISCONNECT.

use std::sync::Arc;
use std::time::Instant;

use super::aliases::OutboundTopic;
use super::{MqttSession, State, convert};
use crate::broker::{
    Command, Delivery, Outbound, PublishOutcome, ServerDisconnect, SubscribeResult,
    UnsubscribeResult,
};
use crate::mqtt::codec::{
    AckProperties, Packet, PubResponse, Publish, ReasonCode, SubAck, UnsubAck, encoded_len,
};
use crate::qos::QoS;

impl MqttSession {
    /// Applies one event from the broker core.
    pub fn handle_outbound(&mut self, event: Outbound, now: Instant) {
        if self.state == State::Closed {
            if matches!(event, Outbound::Deliver(_)) {
                self.outbox.delivered();
            }
            return;
        }
        match event {
            Outbound::ConnAck { session_present } => self.connack(session_present),
            Outbound::Deliver(d) => {
                self.outbox.delivered();
                self.deliver(d, now);
            }
            Outbound::PubAck { packet_id, outcome } => {
                self.incoming_unacked.remove(packet_id);
                if !self.version.is_v5() && outcome == PublishOutcome::QuotaExceeded {
                    // 3.1.1 has no way to refuse a publish: close without PUBACK
                    // rather than acknowledge what was not stored.
                    return self.close_error("could not store message (quota exceeded)", None);
                }
                self.packets.push_back(Packet::PubAck(
                    self.pub_response(packet_id, outcome_reason(outcome)),
                ));
            }
            Outbound::PubRec { packet_id, outcome } => {
                if !outcome.is_success() {
                    self.incoming_unacked.remove(packet_id);
                    if !self.version.is_v5() && outcome == PublishOutcome::QuotaExceeded {
                        return self.close_error("could not store message (quota exceeded)", None);
                    }
                }
                self.packets.push_back(Packet::PubRec(
                    self.pub_response(packet_id, outcome_reason(outcome)),
                ));
            }
            Outbound::PubComp { packet_id, found } => {
                self.incoming_unacked.remove(packet_id);
                let reason = if found {
                    ReasonCode::Success
                } else {
                    ReasonCode::PacketIdentifierNotFound
                };
                self.packets
                    .push_back(Packet::PubComp(self.pub_response(packet_id, reason)));
            }
            Outbound::PubRel { packet_id } => {
                self.packets
                    .push_back(Packet::PubRel(PubResponse::new(packet_id)));
            }
            Outbound::SubAck { packet_id, results } => {
                let results = self.merge_denied(packet_id, results);
                self.handle_outbound_suback(packet_id, results);
            }
            Outbound::UnsubAck { packet_id, results } => {
                let reasons = results
                    .iter()
                    .map(|r| match r {
                        UnsubscribeResult::Removed => ReasonCode::Success,
                        UnsubscribeResult::NoSubscriptionExisted => {
                            ReasonCode::NoSubscriptionExisted
                        }
                    })
                    .collect();
                self.packets.push_back(Packet::UnsubAck(UnsubAck {
                    packet_id,
                    reasons,
                    properties: AckProperties::default(),
                }));
            }
            Outbound::Disconnect(why) => {
                // The core has already detached this connection.
                self.attached = false;
                let (reason, text) = match why {
                    ServerDisconnect::SessionTakenOver => {
                        (ReasonCode::SessionTakenOver, "session taken over")
                    }
                    ServerDisconnect::ShuttingDown => {
                        (ReasonCode::ServerShuttingDown, "server shutting down")
                    }
                    ServerDisconnect::ReceiveMaximumExceeded => (
                        ReasonCode::ReceiveMaximumExceeded,
                        "receive maximum exceeded",
                    ),
                };
                self.close_error(text, Some(reason));
            }
        }
    }

    pub(super) fn handle_outbound_suback(&mut self, packet_id: u16, results: Vec<SubscribeResult>) {
        let v5 = self.version.is_v5();
        let reasons = results.iter().map(|r| suback_reason(*r, v5)).collect();
        self.packets.push_back(Packet::SubAck(SubAck {
            packet_id,
            reasons,
            properties: AckProperties::default(),
        }));
    }

    pub(super) fn pub_response(&self, packet_id: u16, reason: ReasonCode) -> PubResponse {
        PubResponse {
            packet_id,
            reason: if self.version.is_v5() {
                reason
            } else {
                ReasonCode::Success
            },
            properties: AckProperties::default(),
        }
    }

    pub(super) fn deliver(&mut self, d: Delivery, now: Instant) {
        let v5 = self.version.is_v5();
        let m = &d.message;
        if !self.may_read(&m.topic) {
            // Denied deliveries are dropped as if sent, freeing the core's slot.
            self.discard_delivery(d.packet_id, m.qos);
            return;
        }
        let mut properties = if v5 {
            convert::delivery_properties(m, &d.subscription_ids, now)
        } else {
            Default::default()
        };
        let mut publish = Publish {
            dup: d.dup,
            qos: m.qos,
            retain: m.retain,
            topic: m.topic.clone(),
            packet_id: d.packet_id,
            properties: Default::default(),
            payload: m.payload.clone(),
        };
        // MQTT 5 §3.1.2.11.4: never send a packet larger than the client accepts;
        // such a message is discarded as if delivered. Checked before choosing an
        // alias so the alias table only holds topics actually sent.
        publish.properties = properties.clone();
        let too_big = v5
            && encoded_len(&Packet::Publish(publish.clone()), self.version)
                .map_or(true, |n| n > self.client_max_packet as usize);
        if too_big {
            self.discard_delivery(d.packet_id, m.qos);
            return;
        }
        // A client without a Topic Alias Maximum gets no table: it could only answer `Name`.
        if v5 && !d.dup && self.client_topic_alias_max > 0 {
            match self.aliases().outbound.choose(&m.topic) {
                OutboundTopic::Name => {}
                OutboundTopic::NameAndAlias(a) => properties.topic_alias = Some(a),
                OutboundTopic::AliasOnly(a) => {
                    properties.topic_alias = Some(a);
                    publish.topic = Arc::from("");
                }
            }
        }
        publish.properties = properties;
        self.packets.push_back(Packet::Publish(publish));
    }

    pub(super) fn discard_delivery(&mut self, packet_id: Option<u16>, qos: QoS) {
        let Some(packet_id) = packet_id else {
            return;
        };
        let conn = self.conn;
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.command(Command::PubAck { conn, packet_id }),
            QoS::ExactlyOnce => {
                self.command(Command::PubRec { conn, packet_id });
                self.command(Command::PubComp { conn, packet_id });
            }
        }
    }
}

fn outcome_reason(outcome: PublishOutcome) -> ReasonCode {
    match outcome {
        PublishOutcome::Delivered => ReasonCode::Success,
        PublishOutcome::NoMatchingSubscribers => ReasonCode::NoMatchingSubscribers,
        PublishOutcome::NotAuthorized => ReasonCode::NotAuthorized,
        PublishOutcome::QuotaExceeded => ReasonCode::QuotaExceeded,
    }
}

fn suback_reason(r: SubscribeResult, v5: bool) -> ReasonCode {
    match r {
        SubscribeResult::Granted(QoS::AtMostOnce) => ReasonCode::Success,
        SubscribeResult::Granted(QoS::AtLeastOnce) => ReasonCode::GrantedQoS1,
        SubscribeResult::Granted(QoS::ExactlyOnce) => ReasonCode::GrantedQoS2,
        // 3.1.1 knows only 0x80 Failure [MQTT-3.9.3-2].
        _ if !v5 => ReasonCode::UnspecifiedError,
        SubscribeResult::NotAuthorized => ReasonCode::NotAuthorized,
        SubscribeResult::QuotaExceeded => ReasonCode::QuotaExceeded,
        SubscribeResult::NotSupported => ReasonCode::SharedSubscriptionsNotSupported,
        SubscribeResult::Failed => ReasonCode::TopicFilterInvalid,
    }
}
