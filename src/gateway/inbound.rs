//! Requests from a sensor with a session: publish, register, subscribe,
//! acknowledgements of gateway messages, will updates (digest §4.5–4.11, §4.15).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::address::SensorAddr;
use super::dispatch::{raw_topic_id, rejected_suback};
use super::gateway::Gateway;
use super::retransmit::Awaiting;
use super::session::{PendingSub, Session, State, WillData};
use super::topic_registry::{has_wildcard, valid_topic_filter, valid_topic_name};
use crate::broker::{Command, Message as BrokerMessage, SubscribeRequest, SubscriptionOptions};
use crate::mqttsn::codec::{Message, ReturnCode, SnQos, TopicFilterRef, TopicRef, WillTopic};
use crate::qos::QoS;

impl Gateway {
    /// A message from the address of session `s` (digest §4.15).
    pub(super) fn on_session_message(&mut self, now: Instant, s: &mut Session, msg: Message) {
        // G-72: anything from the client restarts supervision.
        if !matches!(s.state, State::Disconnected | State::Lost) {
            s.last_heard = now;
        }
        match s.state.clone() {
            State::Connecting(_) => match msg {
                Message::WillTopic(wt) => self.on_will_topic(now, s, wt),
                Message::WillMsg { message } => self.on_will_msg(now, s, message),
                Message::Disconnect { duration } => self.on_disconnect(now, s, duration),
                _ => {}
            },
            State::Active => self.on_active(now, s, msg),
            State::Asleep | State::Awake => match msg {
                // Digest §5.13: acknowledgements are processed while asleep or awake.
                Message::PubAck { .. }
                | Message::PubRec { .. }
                | Message::PubComp { .. }
                | Message::RegAck { .. } => self.on_active(now, s, msg),
                // Digest §5.4: the lenient reading; a PINGREQ wakes the client.
                Message::PingReq { .. } => self.wake(now, s),
                Message::Disconnect { duration } => self.on_disconnect(now, s, duration),
                Message::PingResp | Message::WillTopic(_) | Message::WillMsg { .. } => {}
                // Anything else needs a CONNECT first; the session is kept.
                _ => self.send(&s.addr.clone(), &Message::Disconnect { duration: None }),
            },
            State::Disconnected | State::Lost => match msg {
                Message::PubAck { .. }
                | Message::PubRec { .. }
                | Message::PubComp { .. }
                | Message::RegAck { .. }
                | Message::PingResp
                | Message::WillTopic(_)
                | Message::WillMsg { .. } => {}
                // G-75, and DISCONNECT is answered with DISCONNECT.
                _ => self.disconnect_unknown(now, &s.addr.clone()),
            },
        }
    }

    fn on_active(&mut self, now: Instant, s: &mut Session, msg: Message) {
        let addr = s.addr.clone();
        match msg {
            Message::Register {
                msg_id, topic_name, ..
            } => self.on_register(s, msg_id, topic_name),
            Message::RegAck { msg_id, code, .. } => self.on_regack(now, s, msg_id, code),
            Message::Publish {
                qos: SnQos::Level(qos),
                retain,
                topic,
                msg_id,
                data,
                ..
            } => self.on_publish(s, qos, retain, topic, msg_id, data),
            Message::PubAck {
                topic_id,
                msg_id,
                code,
            } => {
                if s.retransmit.ack(Awaiting::PubAckOrRec(msg_id)).is_some() {
                    if code == ReturnCode::InvalidTopicId {
                        // G-67: the client does not know the id; REGISTER again next time.
                        s.topics.remove(topic_id);
                    }
                    if let Some(conn) = s.conn {
                        self.command(Command::PubAck {
                            conn,
                            packet_id: msg_id,
                        });
                    }
                }
                self.pump(now, s);
            }
            Message::PubRec { msg_id } => {
                if s.retransmit.ack(Awaiting::PubAckOrRec(msg_id)).is_some() {
                    s.awaiting_core_rel.insert(msg_id);
                    if let Some(conn) = s.conn {
                        self.command(Command::PubRec {
                            conn,
                            packet_id: msg_id,
                        });
                    }
                } else if s.retransmit.contains(Awaiting::PubComp(msg_id)) {
                    // Our PUBREL was lost: send it again.
                    self.send(&addr, &Message::PubRel { msg_id });
                }
            }
            Message::PubComp { msg_id } => {
                if s.retransmit.ack(Awaiting::PubComp(msg_id)).is_some()
                    && let Some(conn) = s.conn
                {
                    self.command(Command::PubComp {
                        conn,
                        packet_id: msg_id,
                    });
                }
                self.pump(now, s);
            }
            Message::PubRel { msg_id } => {
                // G-34, G-36: the core answers PubComp even for an unknown id.
                s.awaiting_rel.remove(&msg_id);
                if let Some(conn) = s.conn {
                    self.command(Command::PubRel {
                        conn,
                        packet_id: msg_id,
                    });
                }
            }
            Message::Subscribe {
                qos, msg_id, topic, ..
            } => self.on_subscribe(s, qos, msg_id, topic),
            Message::Unsubscribe { msg_id, topic } => self.on_unsubscribe(s, msg_id, topic),
            Message::PingReq { .. } => self.send(&addr, &Message::PingResp), // G-70
            Message::Disconnect { duration } => self.on_disconnect(now, s, duration),
            Message::WillTopicUpd(wt) => self.on_will_topic_update(s, wt),
            Message::WillMsgUpd { message } => self.on_will_msg_update(s, message),
            _ => {}
        }
    }

    /// REGISTER from the client (G-27, G-28, G-30).
    fn on_register(&mut self, s: &mut Session, msg_id: u16, name: Bytes) {
        let reply = |topic_id, code| Message::RegAck {
            topic_id,
            msg_id,
            code,
        };
        let msg = match std::str::from_utf8(&name)
            .ok()
            .filter(|n| valid_topic_name(n))
        {
            None => reply(0, ReturnCode::NotSupported),
            Some(n) => match s.topics.register(n) {
                Ok(id) => {
                    s.topics.mark_known(id);
                    reply(id, ReturnCode::Accepted)
                }
                Err(_) => {
                    tracing::warn!(
                        client_id = %s.client_id,
                        max_topics_per_sensor = self.settings.max_topics_per_sensor,
                        "REGISTER refused: topic table full"
                    );
                    reply(0, ReturnCode::Congestion)
                }
            },
        };
        self.send(&s.addr.clone(), &msg);
    }

    /// PUBLISH QoS 0/1/2 from an active client (G-32..G-46).
    fn on_publish(
        &mut self,
        s: &mut Session,
        qos: QoS,
        retain: bool,
        topic: TopicRef,
        msg_id: u16,
        data: Bytes,
    ) {
        let addr = s.addr.clone();
        let raw = raw_topic_id(topic);
        // G-46, digest §5.17: the MsgId of a QoS 0 PUBLISH is ignored.
        let ack_id = if qos == QoS::AtMostOnce { 0 } else { msg_id };
        let puback = |code| Message::PubAck {
            topic_id: raw,
            msg_id: ack_id,
            code,
        };
        let Some(name) = self.resolve_publish_topic(Some(s), topic) else {
            // G-37..G-40: unknown id ⇒ PUBACK 0x02 for any QoS, nothing forwarded.
            self.send(&addr, &puback(ReturnCode::InvalidTopicId));
            return;
        };
        let Some(conn) = s.conn else {
            return;
        };
        if !self
            .access
            .may_publish_as(&s.client_id, s.username.as_deref(), &name)
        {
            // Digest §2.4: 0x03 "not supported" (0x02 would make the sensor
            // re-register, 0x01 retry). QoS 0 gets no answer, as in MQTT 3.1.1.
            self.stats.denied += 1;
            tracing::info!(client_id = %s.client_id, topic = %name, "PUBLISH denied by the ACL");
            if qos != QoS::AtMostOnce {
                self.send(&addr, &puback(ReturnCode::NotSupported));
            }
            return;
        }
        let message = BrokerMessage::new(name, data, qos, retain); // G-43
        if qos == QoS::AtMostOnce {
            self.command(Command::Publish {
                conn,
                packet_id: None,
                message,
            });
            return;
        }
        if qos == QoS::ExactlyOnce && s.awaiting_rel.contains(&msg_id) {
            // G-35: a retransmission before PUBREL is not delivered again.
            self.send(&addr, &Message::PubRec { msg_id });
            return;
        }
        if s.pending_pubs.contains_key(&msg_id) {
            return; // The broker's answer to the first copy is on its way.
        }
        if s.pending_pubs.len() >= self.settings.max_buffered_messages {
            // G-44
            tracing::warn!(
                client_id = %s.client_id,
                max_buffered_messages = self.settings.max_buffered_messages,
                "PUBLISH refused: congestion"
            );
            self.send(&addr, &puback(ReturnCode::Congestion));
            return;
        }
        s.pending_pubs.insert(msg_id, raw);
        self.command(Command::Publish {
            conn,
            packet_id: Some(msg_id),
            message,
        });
    }

    /// The topic name a PUBLISH's topic field stands for, for `s` (or no session).
    fn resolve_publish_topic(&self, s: Option<&Session>, topic: TopicRef) -> Option<Arc<str>> {
        match topic {
            TopicRef::Normal(id) => s?.topics.name(id).cloned(),
            TopicRef::Predefined(id) => self.predefined.name(s.map(|s| &*s.client_id), id).cloned(),
            // G-41: the two characters are the topic name.
            TopicRef::Short(b) => std::str::from_utf8(&b)
                .ok()
                .filter(|n| valid_topic_name(n))
                .map(Arc::from),
        }
    }

    /// PUBLISH with QoS −1, from anyone (G-47..G-49, digest §5.9).
    pub(super) fn publish_minus_one(
        &mut self,
        now: Instant,
        addr: &SensorAddr,
        topic: TopicRef,
        retain: bool,
        data: Bytes,
    ) {
        if !self.settings.allow_qos_minus_one {
            return;
        }
        let key = self.by_addr.get(addr).copied();
        let session = key.and_then(|k| self.sessions.get(&k));
        let active = session.filter(|s| s.state == State::Active);
        let name = match topic {
            // Normal ids only for a connected client; dropped otherwise (G-49).
            TopicRef::Normal(_) => active.and_then(|s| self.resolve_publish_topic(Some(s), topic)),
            _ => self.resolve_publish_topic(session, topic),
        };
        let Some(name) = name else {
            return;
        };
        // Without a session the sender is anonymous: checked with an empty client id.
        let client_id = active.map_or("", |s| &*s.client_id);
        if !self.access.may_publish(client_id, &name) {
            self.stats.denied += 1;
            tracing::debug!(%addr, topic = %name, "QoS -1 PUBLISH denied by the ACL");
            return;
        }
        let message = BrokerMessage::new(name, data, QoS::AtMostOnce, retain);
        match active.and_then(|s| s.conn) {
            Some(conn) => self.command(Command::Publish {
                conn,
                packet_id: None,
                message,
            }),
            None => self.command(Command::PublishInternal { message }),
        }
        if let Some(k) = key
            && let Some(s) = self.sessions.get_mut(&k)
            && matches!(s.state, State::Active | State::Asleep | State::Awake)
        {
            s.last_heard = now;
        }
    }

    /// SUBSCRIBE (G-51, G-53, G-56..G-61).
    fn on_subscribe(&mut self, s: &mut Session, qos: QoS, msg_id: u16, topic: TopicFilterRef) {
        let addr = s.addr.clone();
        let (filter, pending): (Arc<str>, PendingSub) = match topic {
            TopicFilterRef::Name(raw) => {
                let Some(f) = std::str::from_utf8(&raw)
                    .ok()
                    .filter(|f| valid_topic_filter(f))
                else {
                    self.send(&addr, &rejected_suback(msg_id, ReturnCode::NotSupported));
                    return;
                };
                if has_wildcard(f) {
                    // G-53: ids come later, by REGISTER per concrete topic.
                    (
                        Arc::from(f),
                        PendingSub {
                            topic_id: 0,
                            normal: false,
                        },
                    )
                } else if let Some(id) = self.predefined.id_of(&s.client_id, f) {
                    // Digest §4.10 step 1: deliveries on a predefined name use the
                    // predefined id, so the SUBACK announces that id (as the Paho
                    // gateway does) rather than a normal id the client would never see.
                    (
                        Arc::from(f),
                        PendingSub {
                            topic_id: id,
                            normal: false,
                        },
                    )
                } else {
                    match s.topics.register(f) {
                        // G-51, G-60: the same name keeps its id.
                        Ok(id) => (
                            Arc::from(f),
                            PendingSub {
                                topic_id: id,
                                normal: true,
                            },
                        ),
                        Err(_) => {
                            tracing::warn!(
                                client_id = %s.client_id,
                                max_topics_per_sensor = self.settings.max_topics_per_sensor,
                                "SUBSCRIBE refused: topic table full"
                            );
                            self.send(&addr, &rejected_suback(msg_id, ReturnCode::Congestion));
                            return;
                        }
                    }
                }
            }
            TopicFilterRef::Predefined(id) => match self.predefined.name(Some(&s.client_id), id) {
                // G-56
                Some(n) => (
                    n.clone(),
                    PendingSub {
                        topic_id: id,
                        normal: false,
                    },
                ),
                None => {
                    // G-57
                    self.send(&addr, &rejected_suback(msg_id, ReturnCode::InvalidTopicId));
                    return;
                }
            },
            TopicFilterRef::Short(b) => {
                let Some(f) = std::str::from_utf8(&b)
                    .ok()
                    .filter(|f| valid_topic_filter(f))
                else {
                    self.send(&addr, &rejected_suback(msg_id, ReturnCode::NotSupported));
                    return;
                };
                // G-58, digest §5.11: the two characters are echoed as the id.
                (
                    Arc::from(f),
                    PendingSub {
                        topic_id: u16::from_be_bytes(b),
                        normal: false,
                    },
                )
            }
        };
        let Some(conn) = s.conn else {
            return;
        };
        if !self
            .access
            .may_subscribe_as(&s.client_id, s.username.as_deref(), &filter)
        {
            self.stats.denied += 1;
            tracing::info!(client_id = %s.client_id, %filter, "SUBSCRIBE denied by the ACL");
            self.send(&addr, &rejected_suback(msg_id, ReturnCode::NotSupported));
            return;
        }
        s.pending_subs.insert(msg_id, pending);
        self.command(Command::Subscribe {
            conn,
            packet_id: msg_id,
            filters: vec![SubscribeRequest {
                filter,
                options: SubscriptionOptions {
                    qos,
                    ..SubscriptionOptions::default()
                },
            }],
            subscription_id: None,
        });
    }

    /// UNSUBSCRIBE (G-62, G-63).
    fn on_unsubscribe(&mut self, s: &mut Session, msg_id: u16, topic: TopicFilterRef) {
        let filter: Option<Arc<str>> = match topic {
            TopicFilterRef::Name(raw) => std::str::from_utf8(&raw).ok().map(Arc::from),
            TopicFilterRef::Predefined(id) => self.predefined.name(Some(&s.client_id), id).cloned(),
            TopicFilterRef::Short(b) => std::str::from_utf8(&b).ok().map(Arc::from),
        };
        match (filter, s.conn) {
            (Some(filter), Some(conn)) if valid_topic_filter(&filter) => {
                self.command(Command::Unsubscribe {
                    conn,
                    packet_id: msg_id,
                    filters: vec![filter],
                });
            }
            // Nothing to remove: UNSUBACK all the same (digest §5.19).
            _ => self.send(&s.addr.clone(), &Message::UnsubAck { msg_id }),
        }
    }

    /// WILLTOPICUPD (G-86, G-87).
    fn on_will_topic_update(&mut self, s: &mut Session, wt: Option<WillTopic>) {
        let code = match wt {
            None => {
                s.will = None;
                ReturnCode::Accepted
            }
            Some(wt) => match std::str::from_utf8(&wt.topic)
                .ok()
                .filter(|t| valid_topic_name(t))
            {
                None => ReturnCode::NotSupported,
                Some(t)
                    if !self
                        .access
                        .may_publish_as(&s.client_id, s.username.as_deref(), t) =>
                {
                    self.stats.denied += 1;
                    tracing::info!(client_id = %s.client_id, topic = t, "WILLTOPICUPD denied by the ACL");
                    ReturnCode::NotSupported
                }
                Some(t) => {
                    // Digest §5.6: the message is kept; a new will starts empty.
                    let message = s
                        .will
                        .as_ref()
                        .map(|w| w.message.clone())
                        .unwrap_or_default();
                    s.will = Some(WillData {
                        topic: Arc::from(t),
                        qos: wt.qos,
                        retain: wt.retain,
                        message,
                    });
                    ReturnCode::Accepted
                }
            },
        };
        if code == ReturnCode::Accepted {
            self.push_will(s);
        }
        self.send(&s.addr.clone(), &Message::WillTopicResp { code });
    }

    /// WILLMSGUPD (G-88, G-89).
    fn on_will_msg_update(&mut self, s: &mut Session, message: Bytes) {
        let code = match &mut s.will {
            None => ReturnCode::NotSupported,
            Some(w) => {
                w.message = message;
                ReturnCode::Accepted
            }
        };
        if code == ReturnCode::Accepted {
            self.push_will(s);
        }
        self.send(&s.addr.clone(), &Message::WillMsgResp { code });
    }

    fn push_will(&mut self, s: &Session) {
        if let Some(conn) = s.conn {
            self.command(Command::SetWill {
                conn,
                will: s.will.as_ref().map(WillData::to_will),
            });
        }
    }
}
