//! Dispatch of a decoded datagram by message type and the sender's state
//! (digest §4.15): discovery answered at once, connection set-up, a session's
//! traffic, and what an unknown sender or an undecodable datagram gets.

use std::time::Instant;

use super::address::SensorAddr;
use super::discovery::gwinfo;
use super::gateway::Gateway;
use super::identity::may_act_for;
use super::session::State;
use crate::mqttsn::codec::{self, DecodeError, Message, MsgType, ReturnCode, TopicRef};

impl Gateway {
    pub(super) fn dispatch(&mut self, now: Instant, addr: SensorAddr, msg: Message) {
        match &msg {
            Message::SearchGw { radius } => {
                let reply = gwinfo(self.settings.gateway_id);
                // Direct peers: unicast plus the multicast group; behind a
                // forwarder the radius travels in Ctrl (G-11, G-12, G-92).
                let broadcast = addr.node_id.is_none();
                self.send_ctrl(&addr, &reply, *radius, broadcast);
                return;
            }
            // G-13 and digest §2.2: nothing a gateway answers or acts on.
            Message::Advertise { .. }
            | Message::GwInfo { .. }
            | Message::ConnAck { .. }
            | Message::WillTopicReq
            | Message::WillMsgReq
            | Message::SubAck { .. }
            | Message::UnsubAck { .. }
            | Message::WillTopicResp { .. }
            | Message::WillMsgResp { .. } => return,
            Message::Publish {
                qos: codec::SnQos::MinusOne,
                topic,
                retain,
                data,
                ..
            } => {
                let (topic, retain, data) = (*topic, *retain, data.clone());
                self.publish_minus_one(now, &addr, topic, retain, data);
                return;
            }
            Message::Connect {
                flags,
                protocol_id,
                duration,
                client_id,
            } => {
                let (flags, protocol_id, duration, client_id) =
                    (*flags, *protocol_id, *duration, client_id.clone());
                self.on_connect(now, addr, flags, protocol_id, duration, client_id);
                return;
            }
            _ => {}
        }
        if let Message::PingReq {
            client_id: Some(id),
        } = &msg
            && !self.by_addr.contains_key(&addr)
        {
            let id = id.clone();
            self.wake_from_new_address(now, addr, id);
            return;
        }
        let Some(&key) = self.by_addr.get(&addr) else {
            self.on_unknown_sender(now, &addr, &msg);
            return;
        };
        // A DTLS address re-used by another identity (new handshake) is not the session's owner.
        let owner = self.sessions.get(&key).and_then(|s| s.identity.clone());
        if !may_act_for(owner.as_deref(), self.identity.as_deref()) {
            tracing::info!(transport = %addr, identity = ?self.identity.as_ref().map(|i| &i.name), "message refused: the session belongs to another identity");
            self.on_unknown_sender(now, &addr, &msg);
            return;
        }
        self.with_session(key, |gw, s| gw.on_session_message(now, s, msg));
    }

    fn on_unknown_sender(&mut self, now: Instant, addr: &SensorAddr, msg: &Message) {
        tracing::debug!(transport = %addr, msg_type = ?msg.msg_type(), "message from a sender without a session");
        match msg {
            // Acknowledgements and will answers without a session are stale: drop.
            Message::PubAck { .. }
            | Message::PubRec { .. }
            | Message::PubComp { .. }
            | Message::RegAck { .. }
            | Message::WillTopic(_)
            | Message::WillMsg { .. }
            | Message::PingResp => {}
            _ => self.disconnect_unknown(now, addr),
        }
    }

    /// Replies the codec still allows for a message it could not fully decode
    /// (reserved TopicIdType, G-45, G-59; QoS −1 in SUBSCRIBE or a will, digest §5.9).
    pub(super) fn answer_undecodable(&mut self, now: Instant, addr: SensorAddr, e: DecodeError) {
        let Some(&key) = self.by_addr.get(&addr) else {
            return;
        };
        if let DecodeError::QosMinusOneNotAllowed { msg_type, .. } = e
            && msg_type == MsgType::WillTopic.as_u8()
        {
            self.with_session(key, |gw, s| gw.refuse_will_qos(now, s));
            return;
        }
        let active = self
            .sessions
            .get(&key)
            .is_some_and(|s| s.state == State::Active);
        if !active {
            return;
        }
        let reply = match e {
            DecodeError::ReservedTopicIdType {
                msg_type,
                flags,
                topic_id,
                msg_id,
            } => {
                if msg_type == MsgType::Publish.as_u8() {
                    if (flags >> 5) & 0b11 == 0b11 {
                        return; // QoS −1: never answered.
                    }
                    Message::PubAck {
                        topic_id,
                        msg_id,
                        code: ReturnCode::NotSupported,
                    }
                } else if msg_type == MsgType::Subscribe.as_u8() {
                    rejected_suback(msg_id, ReturnCode::NotSupported)
                } else if msg_type == MsgType::Unsubscribe.as_u8() {
                    Message::UnsubAck { msg_id }
                } else {
                    return;
                }
            }
            DecodeError::QosMinusOneNotAllowed {
                msg_type,
                msg_id: Some(msg_id),
            } if msg_type == MsgType::Subscribe.as_u8() => {
                rejected_suback(msg_id, ReturnCode::NotSupported)
            }
            DecodeError::QosMinusOneNotAllowed { msg_type, .. }
                if msg_type == MsgType::WillTopicUpd.as_u8() =>
            {
                Message::WillTopicResp {
                    code: ReturnCode::NotSupported,
                }
            }
            _ => return,
        };
        self.send(&addr, &reply);
    }
}

/// A SUBACK refusing a subscription: QoS 0 and TopicId 0x0000 (G-61).
pub(super) fn rejected_suback(msg_id: u16, code: ReturnCode) -> Message {
    Message::SubAck {
        qos: crate::qos::QoS::AtMostOnce,
        topic_id: 0,
        msg_id,
        code,
    }
}

/// The raw TopicId field of a PUBLISH topic (PUBACK echoes it).
pub(super) fn raw_topic_id(t: TopicRef) -> u16 {
    match t {
        TopicRef::Normal(id) | TopicRef::Predefined(id) => id,
        TopicRef::Short(b) => u16::from_be_bytes(b),
    }
}
