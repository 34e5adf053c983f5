//! Sans-IO tests of MQTT 5 rules in the connection state machine: CONNACK
//! limits, reason codes for bad input, and properties on delivery.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::broker::{Delivery, Outbound};
use crate::broker::{Message, OutboxReceiver};
use crate::mqtt::codec::Publish;
use crate::mqtt::codec::{ConnectProperties, DecodeError, PublishProperties};
use crate::qos::QoS;

fn session() -> (MqttSession, OutboxReceiver, Instant) {
    let (outbox, rx) = Outbox::channel();
    let now = Instant::now();
    let s = MqttSession::new(ConnId::next(), outbox, SessionSettings::default(), now);
    (s, rx, now)
}

fn connect_v5(properties: ConnectProperties) -> Connect {
    Connect {
        protocol: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 60,
        client_id: "c".into(),
        will: None,
        username: None,
        password: None,
        properties,
    }
}

fn connected(properties: ConnectProperties) -> (MqttSession, OutboxReceiver, Instant) {
    let (mut s, rx, now) = session();
    s.handle_packet(Packet::Connect(connect_v5(properties)), now);
    s.handle_outbound(
        Outbound::ConnAck {
            session_present: false,
        },
        now,
    );
    packets(&mut s);
    commands(&mut s);
    (s, rx, now)
}

fn packets(s: &mut MqttSession) -> Vec<Packet> {
    std::iter::from_fn(|| s.poll_packet()).collect()
}

fn commands(s: &mut MqttSession) -> Vec<Command> {
    std::iter::from_fn(|| s.poll_command()).collect()
}

fn disconnect_reason(s: &mut MqttSession) -> Option<ReasonCode> {
    packets(s).into_iter().find_map(|p| match p {
        Packet::Disconnect(d) => Some(d.reason),
        _ => None,
    })
}

pub(super) fn publish(topic: &str, properties: PublishProperties) -> Publish {
    Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: topic.into(),
        packet_id: None,
        properties,
        payload: Bytes::from_static(b"x"),
    }
}

#[test]
fn connack_advertises_the_server_limits_and_omits_maximum_qos() {
    let (mut s, _rx, now) = session();
    s.handle_packet(
        Packet::Connect(connect_v5(ConnectProperties::default())),
        now,
    );
    s.handle_outbound(
        Outbound::ConnAck {
            session_present: false,
        },
        now,
    );
    let d = SessionSettings::default();
    match packets(&mut s).as_slice() {
        [Packet::ConnAck(c)] => {
            let p = &c.properties;
            assert_eq!(p.receive_maximum, Some(d.receive_maximum));
            // The default (no limit but the protocol's) is not advertised.
            assert_eq!(p.maximum_packet_size, None);
            assert!(d.max_packet_size > 268_435_455);
            assert_eq!(p.topic_alias_maximum, Some(d.max_topic_alias));
            assert_eq!(p.retain_available, Some(true));
            assert_eq!(p.wildcard_subscription_available, Some(true));
            assert_eq!(p.subscription_identifiers_available, Some(true));
            assert_eq!(p.shared_subscription_available, Some(true));
            // QoS 2 is supported, and absence means 2 (MQTT 5 §3.2.2.3.4).
            assert_eq!(p.maximum_qos, None);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_v5_connect_is_answered_with_connack_carrying_the_reason() {
    let (mut s, _rx, _now) = session();
    // CONNECT header up to the protocol level: MQTT 5.
    s.peek_connect(&[0x10, 0x10, 0, 4, b'M', b'Q', b'T', b'T', 5]);
    s.handle_decode_error(&DecodeError::InvalidPropertyValue {
        name: "Receive Maximum",
        value: 0,
    });
    match packets(&mut s).as_slice() {
        [Packet::ConnAck(c)] => assert_eq!(c.code, 0x82),
        other => panic!("{other:?}"),
    }
    assert!(s.is_closing());
    assert!(commands(&mut s).is_empty(), "no session was attached");
}

#[test]
fn bad_v311_connect_is_closed_without_connack() {
    let (mut s, _rx, _now) = session();
    s.peek_connect(&[0x10, 0x10, 0, 4, b'M', b'Q', b'T', b'T', 4]);
    s.handle_decode_error(&DecodeError::UnexpectedEnd);
    assert!(packets(&mut s).is_empty());
    assert!(s.is_closing());
}

#[test]
fn duplicate_property_after_connect_closes_with_0x82() {
    let (mut s, _rx, _now) = connected(ConnectProperties::default());
    s.handle_decode_error(&DecodeError::DuplicateProperty(0x02));
    assert_eq!(disconnect_reason(&mut s), Some(ReasonCode::ProtocolError));
    assert!(matches!(
        commands(&mut s).as_slice(),
        [Command::Disconnect {
            kind: DisconnectKind::Abnormal,
            ..
        }]
    ));
    let reason = s
        .close_reason()
        .map(|c| c.reason.clone())
        .unwrap_or_default();
    assert!(
        reason.contains("0x82"),
        "log line names the reason: {reason}"
    );
}

#[test]
fn property_not_allowed_on_the_packet_closes_with_0x81() {
    let (mut s, _rx, _now) = connected(ConnectProperties::default());
    s.handle_decode_error(&DecodeError::PropertyNotAllowed {
        id: 0x11,
        packet: "PUBLISH",
    });
    assert_eq!(disconnect_reason(&mut s), Some(ReasonCode::MalformedPacket));
}

#[test]
fn packet_over_maximum_packet_size_closes_with_0x95() {
    let (mut s, _rx, _now) = connected(ConnectProperties::default());
    s.handle_decode_error(&DecodeError::PacketTooLarge { size: 10, max: 5 });
    assert_eq!(disconnect_reason(&mut s), Some(ReasonCode::PacketTooLarge));
}

#[test]
fn publish_from_client_with_subscription_identifier_closes_with_0x82() {
    let (mut s, _rx, now) = connected(ConnectProperties::default());
    let props = PublishProperties {
        subscription_identifiers: vec![3],
        ..PublishProperties::default()
    };
    s.handle_packet(Packet::Publish(publish("t", props)), now);
    assert_eq!(disconnect_reason(&mut s), Some(ReasonCode::ProtocolError));
}

#[test]
fn empty_topic_without_alias_closes_with_0x82() {
    let (mut s, _rx, now) = connected(ConnectProperties::default());
    s.handle_packet(
        Packet::Publish(publish("", PublishProperties::default())),
        now,
    );
    assert_eq!(disconnect_reason(&mut s), Some(ReasonCode::ProtocolError));
}

#[test]
fn session_expiry_from_disconnect_goes_to_the_core() {
    let props = ConnectProperties {
        session_expiry_interval: Some(60),
        ..ConnectProperties::default()
    };
    let (mut s, _rx, now) = connected(props);
    let d = Disconnect {
        reason: ReasonCode::Success,
        properties: DisconnectProperties {
            session_expiry_interval: Some(5),
            ..DisconnectProperties::default()
        },
    };
    s.handle_packet(Packet::Disconnect(d), now);
    assert!(matches!(
        commands(&mut s).as_slice(),
        [Command::Disconnect {
            kind: DisconnectKind::Graceful {
                publish_will: false,
                session_expiry: Some(5)
            },
            ..
        }]
    ));
}

#[test]
fn delivery_carries_the_remaining_message_expiry() {
    let (mut s, _rx, now) = connected(ConnectProperties::default());
    let mut m = Message::new("t", Bytes::from_static(b"x"), QoS::AtMostOnce, false);
    m.expires_at = Some(now + Duration::from_secs(10));
    let d = Delivery {
        packet_id: None,
        message: m,
        dup: false,
        subscription_ids: vec![4, 9],
    };
    s.handle_outbound(Outbound::Deliver(d), now + Duration::from_secs(3));
    match packets(&mut s).as_slice() {
        [Packet::Publish(p)] => {
            assert_eq!(p.properties.message_expiry_interval, Some(7));
            assert_eq!(p.properties.subscription_identifiers, vec![4, 9]);
        }
        other => panic!("{other:?}"),
    }
}
