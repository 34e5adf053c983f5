//! A client's PUBLISH and SUBSCRIBE: checks the spec leaves to the receiver,
//! topic aliases, authorisation, and the commands they become for the core.

use std::sync::Arc;
use std::time::Instant;

use super::{AliasError, MqttSession, convert};
use crate::broker::{Command, Message, SubscribeRequest, SubscribeResult, SubscriptionOptions};
use crate::mqtt::codec::{Publish, ReasonCode, Subscribe};
use crate::mqtt::topic;
use crate::qos::QoS;

impl MqttSession {
    pub(super) fn handle_publish(&mut self, p: Publish, now: Instant) {
        let v5 = self.version.is_v5();
        if v5 && let Some(why) = publish_property_error(&p) {
            return self.protocol_error(why);
        }
        let topic = if v5 && p.properties.topic_alias.is_some() {
            match self
                .aliases()
                .inbound
                .resolve(&p.topic, p.properties.topic_alias)
            {
                Ok(t) => t,
                Err(AliasError::OutOfRange) => {
                    return self.close_error(
                        "[MQTT-3.3.2-9] topic alias out of range",
                        Some(ReasonCode::TopicAliasInvalid),
                    );
                }
                Err(AliasError::Unknown) => {
                    return self.protocol_error("[MQTT-3.3.4-?] unknown topic alias");
                }
            }
        } else {
            p.topic.clone()
        };
        if let Err(e) = topic::validate_topic_name(&topic) {
            return self.close_error(
                &format!("invalid topic {topic:?} in PUBLISH: {e}"),
                Some(ReasonCode::TopicNameInvalid),
            );
        }
        if p.retain && !self.limits.retain_available {
            return self.close_error(
                "retained PUBLISH but retain is not available",
                Some(ReasonCode::RetainNotSupported),
            );
        }
        if !self.may_publish(&topic) {
            return self.deny_publish(p.qos, p.packet_id);
        }
        if let Some(id) = p.packet_id
            && p.qos != QoS::AtMostOnce
            && !self.incoming_unacked.contains(id)
        {
            if self.receive_window_full() {
                return self.close_error(
                    "[MQTT-3.3.4-9] Receive Maximum exceeded",
                    Some(ReasonCode::ReceiveMaximumExceeded),
                );
            }
            self.incoming_unacked.insert(id);
        }
        let message = Message {
            topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            properties: if v5 {
                convert::message_properties(&p.properties)
            } else {
                None
            },
            expires_at: if v5 {
                convert::publish_expiry(now, &p.properties)
            } else {
                None
            },
            // The core stamps the publisher from the session.
            publisher: None,
        };
        self.command(Command::Publish {
            conn: self.conn,
            packet_id: p.packet_id.filter(|_| p.qos != QoS::AtMostOnce),
            message,
        });
    }

    pub(super) fn handle_subscribe(&mut self, s: Subscribe) {
        let v5 = self.version.is_v5();
        let mut filters = Vec::with_capacity(s.filters.len());
        let mut denied = Vec::new();
        for (i, (filter, o)) in s.filters.iter().enumerate() {
            if v5 && o.no_local && topic::parse_shared(filter).is_some() {
                return self.protocol_error("[MQTT-3.8.3-4] No Local on a shared subscription");
            }
            if !self.may_subscribe(filter) {
                denied.push(i);
                continue;
            }
            filters.push(SubscribeRequest {
                filter: Arc::from(filter.as_str()),
                options: SubscriptionOptions {
                    qos: o.qos,
                    no_local: v5 && o.no_local,
                    retain_as_published: v5 && o.retain_as_published,
                    retain_handling: if v5 { o.retain_handling as u8 } else { 0 },
                },
            });
        }
        if filters.is_empty() {
            let results = vec![SubscribeResult::NotAuthorized; denied.len()];
            return self.handle_outbound_suback(s.packet_id, results);
        }
        if !denied.is_empty() {
            self.denied_filters
                .get_or_insert_default()
                .insert(s.packet_id, denied);
        }
        let subscription_id = if v5 {
            s.properties.subscription_identifier
        } else {
            None
        };
        self.command(Command::Subscribe {
            conn: self.conn,
            packet_id: s.packet_id,
            filters,
            subscription_id,
        });
    }
}

/// Rules on a client's PUBLISH properties that the codec leaves to the
/// receiver; each break is a Protocol Error (0x82).
fn publish_property_error(p: &Publish) -> Option<&'static str> {
    if p.topic.is_empty() && p.properties.topic_alias.is_none() {
        return Some("[MQTT-3.3.2-1] empty topic name without a topic alias");
    }
    if !p.properties.subscription_identifiers.is_empty() {
        return Some("[MQTT-3.3.4-6] PUBLISH from a client carries a Subscription Identifier");
    }
    if p.properties
        .response_topic
        .as_deref()
        .is_some_and(|t| topic::validate_topic_name(t).is_err())
    {
        return Some("[MQTT-3.3.2-14] Response Topic is not a valid topic name");
    }
    None
}
