//! The gateway's publish procedure towards a sensor (MQTT-SN 1.2 §6.10,
//! digest §4.10) and the broker core's answers to the sensor's requests.

use std::time::Instant;

use super::gateway::Gateway;
use super::retransmit::{Awaiting, RetriesExhausted};
use super::session::{Session, Stage, State};
use crate::broker::{
    Command, ConnId, Delivery, DisconnectKind, Outbound, PublishOutcome, SubscribeResult,
};
use crate::mqttsn::codec::{self, Message, ReturnCode, SnQos, TopicRef};
use crate::qos::QoS;

/// How a topic name is shown to one client.
enum Representation {
    /// Ready to use.
    Topic(TopicRef),
    /// A normal id must be REGISTERed first.
    Register,
}

impl Gateway {
    /// One broker event for the connection of `s`.
    pub(super) fn on_outbound(
        &mut self,
        now: Instant,
        s: &mut Session,
        conn: ConnId,
        event: Outbound,
    ) {
        if s.conn != Some(conn) {
            return;
        }
        let addr = s.addr.clone();
        match event {
            Outbound::ConnAck { .. } => {
                if matches!(&s.state, State::Connecting(h) if h.stage == Stage::ConnAck) {
                    self.activate(now, s);
                }
            }
            Outbound::Deliver(d) => {
                if let Some(o) = &s.outbox {
                    o.delivered();
                }
                self.on_deliver(now, s, d);
            }
            Outbound::PubAck { packet_id, outcome } => {
                let topic_id = s.pending_pubs.remove(&packet_id).unwrap_or(0);
                self.send(
                    &addr,
                    &Message::PubAck {
                        topic_id,
                        msg_id: packet_id,
                        code: publish_code(outcome),
                    },
                ); // G-33
            }
            Outbound::PubRec { packet_id, outcome } => {
                let topic_id = s.pending_pubs.remove(&packet_id).unwrap_or(0);
                if outcome.is_success() {
                    s.awaiting_rel.insert(packet_id);
                    self.send(&addr, &Message::PubRec { msg_id: packet_id }); // G-34
                } else {
                    // A refused QoS 2 PUBLISH gets a PUBACK, not a PUBREC (digest §3.13).
                    self.send(
                        &addr,
                        &Message::PubAck {
                            topic_id,
                            msg_id: packet_id,
                            code: publish_code(outcome),
                        },
                    );
                }
            }
            Outbound::PubComp { packet_id, .. } => {
                s.awaiting_rel.remove(&packet_id);
                self.send(&addr, &Message::PubComp { msg_id: packet_id }); // G-34, G-36
            }
            Outbound::PubRel { packet_id } => {
                s.awaiting_core_rel.remove(&packet_id);
                if s.auto_complete.remove(&packet_id) {
                    self.command(Command::PubComp { conn, packet_id });
                } else {
                    let msg = Message::PubRel { msg_id: packet_id };
                    let retry = self.settings.retry_interval;
                    s.retransmit
                        .track(now, retry, Awaiting::PubComp(packet_id), msg.clone());
                    if matches!(s.state, State::Active | State::Awake) {
                        self.send(&addr, &msg);
                    }
                }
            }
            Outbound::SubAck { packet_id, results } => {
                let pending = s.pending_subs.remove(&packet_id);
                let msg = match (results.first(), pending) {
                    (Some(SubscribeResult::Granted(qos)), Some(p)) => {
                        if p.normal {
                            s.topics.mark_known(p.topic_id);
                        }
                        Message::SubAck {
                            qos: *qos,
                            topic_id: p.topic_id,
                            msg_id: packet_id,
                            code: ReturnCode::Accepted,
                        }
                    }
                    (Some(SubscribeResult::QuotaExceeded), _) => {
                        super::dispatch::rejected_suback(packet_id, ReturnCode::Congestion)
                    }
                    // Digest §5.7: broker refusals read as "not supported".
                    _ => super::dispatch::rejected_suback(packet_id, ReturnCode::NotSupported),
                };
                self.send(&addr, &msg);
            }
            Outbound::UnsubAck { packet_id, .. } => {
                self.send(&addr, &Message::UnsubAck { msg_id: packet_id }); // G-62
            }
            Outbound::Disconnect(reason) => {
                tracing::info!(
                    client_id = %s.client_id,
                    transport = %s.addr,
                    ?reason,
                    "MQTT-SN client {} disconnected by the broker.",
                    s.client_id
                );
                // Refused before its CONNACK (an upstream broker turned the
                // identity down): a CONNECT is answered with CONNACK (§5.4.5).
                let connecting =
                    matches!(&s.state, State::Connecting(h) if h.stage == Stage::ConnAck);
                let reply = if connecting {
                    Message::ConnAck {
                        code: ReturnCode::NotSupported,
                    }
                } else {
                    Message::Disconnect { duration: None }
                };
                self.send(&addr, &reply);
                // The core has already ended this connection: nothing to tell it.
                s.conn = None;
                s.outbox = None;
                s.reset_connection_state();
                s.state = State::Disconnected;
                s.expires_at = None;
            }
        }
    }

    fn on_deliver(&mut self, now: Instant, s: &mut Session, d: Delivery) {
        if !self
            .access
            .may_read_as(&s.client_id, s.username.as_deref(), &d.message.topic)
        {
            // Not sent; acknowledged to the core so its window does not fill.
            self.stats.denied += 1;
            tracing::debug!(client_id = %s.client_id, topic = %d.message.topic, "delivery denied by the ACL");
            self.abandon(s, &d);
            return;
        }
        match s.state {
            State::Active | State::Awake | State::Asleep | State::Connecting(_) => {
                if s.queue.push(d).is_err() {
                    self.stats.dropped_qos0 += 1;
                    tracing::warn!(
                        client_id = %s.client_id,
                        max_buffered_messages = self.settings.max_buffered_messages,
                        "buffer full: QoS 0 delivery dropped"
                    );
                }
                // G-77: asleep (or still connecting) ⇒ held until the client can take it.
                if matches!(s.state, State::Active | State::Awake) {
                    self.pump(now, s);
                }
            }
            State::Disconnected | State::Lost => {}
        }
    }

    /// Sends queued deliveries while the client can take them; REGISTERs
    /// first where needed, one at a time (G-54, G-69). Ends an awake period
    /// with PINGRESP once everything is acknowledged (G-80, G-81).
    pub(super) fn pump(&mut self, now: Instant, s: &mut Session) {
        if !matches!(s.state, State::Active | State::Awake) {
            return;
        }
        while s.register.is_none() {
            let Some(front) = s.queue.front() else {
                break;
            };
            let topic = front.message.topic.clone();
            // A message that expired while the client slept is not sent (MQTT 5 §3.3.2.3.3).
            if s.rejected.contains(&topic) || front.message.is_expired(now) {
                if let Some(d) = s.queue.pop() {
                    self.abandon(s, &d);
                }
                continue;
            }
            match self.representation(s, &topic) {
                Representation::Topic(t) => {
                    if let Some(d) = s.queue.pop() {
                        self.send_publish(now, s, d, t);
                    }
                }
                Representation::Register => self.send_register(now, s, topic),
            }
        }
        let idle = s.queue.is_empty()
            && s.retransmit.is_empty()
            && s.awaiting_core_rel.is_empty()
            && s.register.is_none();
        if s.state == State::Awake && idle {
            // G-79, G-81: the awake period ends; the sleep timer restarts.
            self.send(&s.addr.clone(), &Message::PingResp);
            s.state = State::Asleep;
            s.last_heard = now;
        }
    }

    /// Digest §4.10 step 1: predefined id, a normal id the client knows,
    /// a two-character short name, else REGISTER.
    fn representation(&self, s: &Session, topic: &str) -> Representation {
        if let Some(id) = self.predefined.id_of(&s.client_id, topic) {
            return Representation::Topic(TopicRef::Predefined(id));
        }
        if let Some(id) = s.topics.known_id_of(topic) {
            return Representation::Topic(TopicRef::Normal(id));
        }
        if let [a, b] = topic.as_bytes() {
            return Representation::Topic(TopicRef::Short([*a, *b]));
        }
        Representation::Register
    }

    fn send_register(&mut self, now: Instant, s: &mut Session, topic: std::sync::Arc<str>) {
        let topic_id = match s.topics.register(&topic) {
            Ok(id) => id,
            Err(_) => {
                tracing::warn!(client_id = %s.client_id, %topic, "delivery dropped: topic table full");
                for d in s.queue.take_topic(&topic) {
                    self.abandon(s, &d);
                }
                return;
            }
        };
        let msg_id = s.next_msg_id();
        let msg = Message::Register {
            topic_id,
            msg_id,
            topic_name: bytes::Bytes::copy_from_slice(topic.as_bytes()),
        };
        if codec::encoded_len(&msg) > self.settings.max_message_size {
            // G-68: a name too long for a REGISTER is abandoned silently.
            s.topics.remove(topic_id);
            for d in s.queue.take_topic(&topic) {
                self.abandon(s, &d);
            }
            return;
        }
        s.register = Some((msg_id, topic_id));
        let retry = self.settings.retry_interval;
        s.retransmit
            .track(now, retry, Awaiting::RegAck(msg_id), msg.clone());
        self.send(&s.addr.clone(), &msg);
    }

    /// REGACK from the client for a gateway REGISTER (G-54, G-55).
    pub(super) fn on_regack(
        &mut self,
        now: Instant,
        s: &mut Session,
        msg_id: u16,
        code: ReturnCode,
    ) {
        let Some((pending_msg, pending_topic)) = s.register else {
            return;
        };
        if pending_msg != msg_id {
            return;
        }
        s.retransmit.ack(Awaiting::RegAck(msg_id));
        s.register = None;
        if code == ReturnCode::Accepted {
            s.topics.mark_known(pending_topic);
        } else if let Some(name) = s.topics.name(pending_topic).cloned() {
            // The client refuses this exact name: treat it as unsubscribed.
            s.topics.remove(pending_topic);
            for d in s.queue.take_topic(&name) {
                self.abandon(s, &d);
            }
            // Bounded like the topic table; past it the name is simply offered again.
            if s.rejected.len() < self.settings.max_topics_per_sensor {
                s.rejected.insert(name);
            }
        }
        self.pump(now, s);
    }

    fn send_publish(&mut self, now: Instant, s: &mut Session, d: Delivery, topic: TopicRef) {
        // G-64: QoS 0 carries MsgId 0; G-65: the core already granted min(QoS).
        let qos = d.message.qos;
        let msg_id = match qos {
            QoS::AtMostOnce => 0,
            _ => d.packet_id.unwrap_or(0),
        };
        let msg = Message::Publish {
            dup: d.dup && qos != QoS::AtMostOnce,
            qos: SnQos::Level(qos), // G-50: never QoS −1.
            retain: d.message.retain,
            topic,
            msg_id,
            data: d.message.payload.clone(),
        };
        if codec::encoded_len(&msg) > self.settings.max_message_size {
            // G-68: silently abandoned.
            tracing::warn!(
                client_id = %s.client_id,
                max_message_size = self.settings.max_message_size,
                "delivery too large for the client: dropped"
            );
            self.abandon(s, &d);
            return;
        }
        if qos != QoS::AtMostOnce {
            let retry = self.settings.retry_interval;
            s.retransmit
                .track(now, retry, Awaiting::PubAckOrRec(msg_id), msg.clone());
        }
        self.send(&s.addr.clone(), &msg);
    }

    /// Gives up a delivery without sending it; the core is told it is done
    /// so that its in-flight window does not fill up.
    fn abandon(&mut self, s: &mut Session, d: &Delivery) {
        self.stats.abandoned += 1;
        let (Some(conn), Some(packet_id)) = (s.conn, d.packet_id) else {
            return;
        };
        match d.message.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.command(Command::PubAck { conn, packet_id }),
            QoS::ExactlyOnce => {
                s.auto_complete.insert(packet_id);
                self.command(Command::PubRec { conn, packet_id });
            }
        }
    }

    /// Retransmits what is due; exhausted retries make the client lost (G-66, G-69).
    pub(super) fn retransmit_due(&mut self, now: Instant, s: &mut Session) {
        let retry = self.settings.retry_interval;
        match s.retransmit.due(now, retry, self.settings.max_retries) {
            Ok(msgs) => {
                let addr = s.addr.clone();
                for m in msgs {
                    self.send(&addr, &m);
                }
            }
            Err(RetriesExhausted) => {
                tracing::info!(
                    client_id = %s.client_id,
                    transport = %s.addr,
                    "MQTT-SN client {} lost: retransmissions exhausted.",
                    s.client_id
                );
                self.end_session(now, s, State::Lost, DisconnectKind::Abnormal);
            }
        }
    }
}

/// The MQTT-SN return code for a broker publish outcome (digest §5.7).
fn publish_code(outcome: PublishOutcome) -> ReturnCode {
    match outcome {
        PublishOutcome::Delivered | PublishOutcome::NoMatchingSubscribers => ReturnCode::Accepted,
        PublishOutcome::QuotaExceeded => ReturnCode::Congestion,
        PublishOutcome::NotAuthorized => ReturnCode::NotSupported,
    }
}
