//! The session's calls into [`Authorizer`]: credentials at CONNECT, ACL
//! checks on PUBLISH, SUBSCRIBE and each delivery. Without an authorizer
//! every check passes.

use std::sync::Arc;

use super::MqttSession;
use super::connect::Refusal;
use crate::auth::{AuthFailure, Authorizer};
use crate::broker::SubscribeResult;
use crate::mqtt::codec::{Connect, Packet, ReasonCode};
use crate::qos::QoS;

impl MqttSession {
    /// Sets the rules this connection is checked against.
    pub fn set_authorizer(&mut self, authorizer: Arc<Authorizer>) {
        self.authorizer = Some(authorizer);
    }

    /// Checks the CONNECT's credentials; a user name already set by the
    /// transport (TLS client certificate identity) needs no password.
    pub(super) fn check_credentials(&self, c: &Connect, client_id: &str) -> Result<(), Refusal> {
        let Some(auth) = &self.authorizer else {
            return Ok(());
        };
        if self.username.is_none() {
            match auth.authenticate(c.username.as_deref(), c.password.as_deref()) {
                Ok(()) => {}
                // [MQTT-3.1.4-3] / MQTT 5 §3.2.2.2: CONNACK 4 / 0x86.
                Err(AuthFailure::BadCredentials) => {
                    return Err(Refusal {
                        v3_code: 4,
                        v5_reason: ReasonCode::BadUserNameOrPassword,
                        why: format!("bad user name or password (user {:?})", c.username),
                    });
                }
                Err(AuthFailure::NotAuthorized) => {
                    return Err(Refusal {
                        v3_code: 5,
                        v5_reason: ReasonCode::NotAuthorized,
                        why: "anonymous clients are not allowed".into(),
                    });
                }
            }
        }
        let user = self.username.as_deref().or(c.username.as_deref());
        if let Some(w) = &c.will
            && !auth.can_publish(client_id, user, &w.topic)
        {
            // A will the client could not publish itself is refused up front.
            return Err(Refusal {
                v3_code: 5,
                v5_reason: ReasonCode::NotAuthorized,
                why: format!("will topic {:?} denied by the ACL", w.topic),
            });
        }
        Ok(())
    }

    fn allowed(&self, check: impl Fn(&Authorizer, &str, Option<&str>) -> bool) -> bool {
        let Some(auth) = &self.authorizer else {
            return true;
        };
        let client_id = self.client_id.as_deref().unwrap_or("");
        check(auth, client_id, self.username.as_deref())
    }

    /// Whether the client may publish to `topic`.
    pub(super) fn may_publish(&self, topic: &str) -> bool {
        self.allowed(|a, c, u| a.can_publish(c, u, topic))
    }

    /// Whether a message on `topic` may be delivered to this client.
    pub(super) fn may_read(&self, topic: &str) -> bool {
        self.allowed(|a, c, u| a.can_read(c, u, topic))
    }

    /// Whether the client may subscribe to `filter`.
    pub(super) fn may_subscribe(&self, filter: &str) -> bool {
        self.allowed(|a, c, u| a.can_subscribe(c, u, filter))
    }

    /// Answers a PUBLISH the ACL denies without routing it: MQTT 5 gets
    /// reason 0x87; 3.1.1 has no refusal, so the message is acknowledged and
    /// dropped (as Mosquitto does). A 3.1.1 QoS 2 flow then ends when the
    /// core answers the PUBREL for an id it never stored.
    pub(super) fn deny_publish(&mut self, qos: QoS, packet_id: Option<u16>) {
        let Some(id) = packet_id else {
            return;
        };
        let response = self.pub_response(id, ReasonCode::NotAuthorized);
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.packets.push_back(Packet::PubAck(response)),
            QoS::ExactlyOnce => self.packets.push_back(Packet::PubRec(response)),
        }
    }

    /// Puts `NotAuthorized` back at the positions of the filters removed
    /// from SUBSCRIBE `packet_id` before it went to the core.
    pub(super) fn merge_denied(
        &mut self,
        packet_id: u16,
        mut results: Vec<SubscribeResult>,
    ) -> Vec<SubscribeResult> {
        let Some(pending) = self.denied_filters.as_mut() else {
            return results;
        };
        if let Some(denied) = pending.remove(&packet_id) {
            for i in denied {
                results.insert(i.min(results.len()), SubscribeResult::NotAuthorized);
            }
        }
        if pending.is_empty() {
            self.denied_filters = None;
        }
        results
    }
}
