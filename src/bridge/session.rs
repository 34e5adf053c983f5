//! The bridge's MQTT client session with the remote broker, sans-IO: packet
//! ids, the outgoing in-flight window, resending after a reconnect, and the
//! conversion between broker messages and PUBLISH packets.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use crate::broker::{Message, MessageProperties};
use crate::mqtt::codec::{Packet, ProtocolVersion, PubResponse, Publish, PublishProperties};
use crate::qos::QoS;

use super::queue::Seq;

/// One outgoing QoS 1/2 message the remote broker has not completed.
#[derive(Debug, Clone)]
struct InFlight {
    seq: Seq,
    packet_id: u16,
    message: Message,
    /// QoS 2: PUBREC received, PUBREL sent.
    released: bool,
}

/// What an acknowledgement from the remote broker means.
#[derive(Debug, Clone, PartialEq)]
pub enum AckEffect {
    /// The message is done: remove it from the queue.
    Done {
        /// Queue position.
        seq: Seq,
        /// The remote refused it (MQTT 5 reason code ≥ 0x80).
        refused: Option<u8>,
    },
    /// Send PUBREL with this packet id and wait for PUBCOMP.
    SendPubRel(u16),
    /// Unknown packet id: ignore.
    Ignore,
}

/// Outgoing side of the remote session.
#[derive(Debug)]
pub struct UpstreamSession {
    version: ProtocolVersion,
    inflight: VecDeque<InFlight>,
    next_packet_id: u16,
    max_inflight: usize,
    window: usize,
}

impl UpstreamSession {
    /// A session speaking `version` with at most `max_inflight` unacknowledged messages.
    pub fn new(version: ProtocolVersion, max_inflight: u16) -> UpstreamSession {
        let max_inflight = usize::from(max_inflight.max(1));
        UpstreamSession {
            version,
            inflight: VecDeque::new(),
            next_packet_id: 1,
            max_inflight,
            window: max_inflight,
        }
    }

    /// The protocol version in use.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// Messages sent and not yet completed.
    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    /// A new connection is up; returns what must be sent again, in the
    /// original order. The remote's Receive Maximum narrows the window
    /// (MQTT 5 §3.2.2.3.3).
    pub fn on_connected(
        &mut self,
        session_present: bool,
        receive_maximum: Option<u16>,
        now: Instant,
    ) -> Vec<Packet> {
        self.window = receive_maximum
            .map_or(self.max_inflight, |r| usize::from(r).min(self.max_inflight))
            .max(1);
        self.inflight
            .iter()
            .map(|f| {
                if f.released && session_present {
                    // [MQTT-4.4.0-1] resend PUBREL for a QoS 2 flow the remote has.
                    Packet::PubRel(PubResponse::new(f.packet_id))
                } else {
                    // A message released into a lost session is published again:
                    // at least once beats never.
                    Packet::Publish(to_publish(&f.message, Some(f.packet_id), true, now))
                }
            })
            .collect()
    }

    /// True when another QoS 1/2 message may be sent.
    pub fn can_send(&self) -> bool {
        self.inflight.len() < self.window
    }

    fn allocate_packet_id(&mut self) -> u16 {
        loop {
            let id = self.next_packet_id;
            self.next_packet_id = self.next_packet_id.checked_add(1).unwrap_or(1);
            if !self.inflight.iter().any(|f| f.packet_id == id) {
                return id;
            }
        }
    }

    /// Sends a queued message: the PUBLISH, and for QoS 0 the queue position
    /// to acknowledge at once.
    pub fn publish(&mut self, seq: Seq, message: Message, now: Instant) -> (Packet, Option<Seq>) {
        if message.qos == QoS::AtMostOnce {
            return (
                Packet::Publish(to_publish(&message, None, false, now)),
                Some(seq),
            );
        }
        let packet_id = self.allocate_packet_id();
        let packet = Packet::Publish(to_publish(&message, Some(packet_id), false, now));
        self.inflight.push_back(InFlight {
            seq,
            packet_id,
            message,
            released: false,
        });
        (packet, None)
    }

    fn take(&mut self, packet_id: u16) -> Option<InFlight> {
        let i = self
            .inflight
            .iter()
            .position(|f| f.packet_id == packet_id)?;
        self.inflight.remove(i)
    }

    /// PUBACK from the remote.
    pub fn on_puback(&mut self, ack: &PubResponse) -> AckEffect {
        match self.take(ack.packet_id) {
            Some(f) => AckEffect::Done {
                seq: f.seq,
                refused: refused(ack),
            },
            None => AckEffect::Ignore,
        }
    }

    /// PUBREC from the remote: answer with PUBREL, unless it refused the message.
    pub fn on_pubrec(&mut self, ack: &PubResponse) -> AckEffect {
        if let Some(code) = refused(ack) {
            return match self.take(ack.packet_id) {
                Some(f) => AckEffect::Done {
                    seq: f.seq,
                    refused: Some(code),
                },
                None => AckEffect::Ignore,
            };
        }
        match self
            .inflight
            .iter_mut()
            .find(|f| f.packet_id == ack.packet_id)
        {
            Some(f) => {
                f.released = true;
                AckEffect::SendPubRel(ack.packet_id)
            }
            // [MQTT-4.3.3] an unknown PUBREC still gets a PUBREL so the remote can finish.
            None => AckEffect::SendPubRel(ack.packet_id),
        }
    }

    /// PUBCOMP from the remote.
    pub fn on_pubcomp(&mut self, ack: &PubResponse) -> AckEffect {
        match self.take(ack.packet_id) {
            Some(f) => AckEffect::Done {
                seq: f.seq,
                refused: None,
            },
            None => AckEffect::Ignore,
        }
    }
}

fn refused(ack: &PubResponse) -> Option<u8> {
    let code = ack.reason as u8;
    (code >= 0x80).then_some(code)
}

/// A broker message as a PUBLISH to the remote; properties only matter for MQTT 5.
pub fn to_publish(message: &Message, packet_id: Option<u16>, dup: bool, now: Instant) -> Publish {
    let mut properties = PublishProperties {
        message_expiry_interval: message.remaining_expiry(now),
        ..PublishProperties::default()
    };
    if let Some(p) = &message.properties {
        properties.payload_format_indicator = p.payload_format_utf8;
        properties.content_type = p.content_type.as_deref().map(str::to_owned);
        properties.response_topic = p.response_topic.as_deref().map(str::to_owned);
        properties.correlation_data = p.correlation_data.clone();
        properties.user_properties = p
            .user_properties
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }
    Publish {
        dup: dup && packet_id.is_some(),
        qos: message.qos,
        retain: message.retain,
        topic: message.topic.clone(),
        packet_id,
        properties,
        payload: message.payload.clone(),
    }
}

/// A PUBLISH from the remote as a broker message on `topic`.
pub fn from_publish(publish: &Publish, topic: Arc<str>, qos: QoS, now: Instant) -> Message {
    let p = &publish.properties;
    let properties = MessageProperties {
        payload_format_utf8: p.payload_format_indicator,
        content_type: p.content_type.as_deref().map(Arc::from),
        response_topic: p.response_topic.as_deref().map(Arc::from),
        correlation_data: p.correlation_data.clone(),
        user_properties: p
            .user_properties
            .iter()
            .map(|(k, v)| (Arc::from(k.as_str()), Arc::from(v.as_str())))
            .collect(),
    };
    Message {
        topic,
        payload: publish.payload.clone(),
        qos,
        retain: publish.retain,
        properties: (!properties.is_empty()).then(|| Arc::new(properties)),
        expires_at: p
            .message_expiry_interval
            .map(|s| now + std::time::Duration::from_secs(u64::from(s))),
        // The core stamps the bridge's own client id when it is published locally.
        publisher: None,
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::mqtt::codec::ReasonCode;

    fn msg(qos: QoS) -> Message {
        Message::new("t", Bytes::from_static(b"x"), qos, false)
    }

    fn pid(p: &Packet) -> u16 {
        match p {
            Packet::Publish(p) => p.packet_id.unwrap(),
            Packet::PubRel(r) => r.packet_id,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn qos0_is_done_when_written() {
        let mut s = UpstreamSession::new(ProtocolVersion::V311, 2);
        let (_, done) = s.publish(7, msg(QoS::AtMostOnce), Instant::now());
        assert_eq!(done, Some(7));
        assert_eq!(s.inflight(), 0);
    }

    #[test]
    fn window_limits_unacknowledged_messages() {
        let now = Instant::now();
        let mut s = UpstreamSession::new(ProtocolVersion::V311, 2);
        let (a, _) = s.publish(0, msg(QoS::AtLeastOnce), now);
        s.publish(1, msg(QoS::AtLeastOnce), now);
        assert!(!s.can_send());
        let effect = s.on_puback(&PubResponse::new(pid(&a)));
        assert_eq!(
            effect,
            AckEffect::Done {
                seq: 0,
                refused: None
            }
        );
        assert!(s.can_send());
    }

    #[test]
    fn reconnect_resends_in_order_with_dup() {
        let now = Instant::now();
        let mut s = UpstreamSession::new(ProtocolVersion::V5, 10);
        s.publish(0, msg(QoS::AtLeastOnce), now);
        s.publish(1, msg(QoS::AtLeastOnce), now);
        let again = s.on_connected(false, None, now);
        assert_eq!(again.len(), 2);
        assert!(matches!(&again[0], Packet::Publish(p) if p.dup && p.packet_id == Some(1)));
        assert!(matches!(&again[1], Packet::Publish(p) if p.packet_id == Some(2)));
    }

    #[test]
    fn released_qos2_resends_pubrel_when_the_session_is_kept() {
        let now = Instant::now();
        let mut s = UpstreamSession::new(ProtocolVersion::V5, 10);
        let (p, _) = s.publish(0, msg(QoS::ExactlyOnce), now);
        let id = pid(&p);
        assert!(matches!(
            s.on_pubrec(&PubResponse::new(id)),
            AckEffect::SendPubRel(_)
        ));
        assert!(matches!(
            s.on_connected(true, None, now)[0],
            Packet::PubRel(_)
        ));
        assert!(matches!(
            s.on_connected(false, None, now)[0],
            Packet::Publish(_)
        ));
        assert_eq!(
            s.on_pubcomp(&PubResponse::new(id)),
            AckEffect::Done {
                seq: 0,
                refused: None
            }
        );
    }

    #[test]
    fn refused_pubrec_ends_the_flow() {
        let now = Instant::now();
        let mut s = UpstreamSession::new(ProtocolVersion::V5, 10);
        let (p, _) = s.publish(3, msg(QoS::ExactlyOnce), now);
        let mut rec = PubResponse::new(pid(&p));
        rec.reason = ReasonCode::NotAuthorized;
        assert_eq!(
            s.on_pubrec(&rec),
            AckEffect::Done {
                seq: 3,
                refused: Some(0x87)
            }
        );
    }

    #[test]
    fn remote_receive_maximum_narrows_the_window() {
        let now = Instant::now();
        let mut s = UpstreamSession::new(ProtocolVersion::V5, 10);
        s.on_connected(false, Some(1), now);
        s.publish(0, msg(QoS::AtLeastOnce), now);
        assert!(!s.can_send());
    }
}
