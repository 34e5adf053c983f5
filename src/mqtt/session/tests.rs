//! Sans-IO tests of the MQTT connection state machine with a hand-driven clock.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::broker::{Delivery, Message, OutboxReceiver, SubscribeResult};
use crate::broker::{Outbound, PublishOutcome, ServerDisconnect};
use crate::mqtt::codec::Publish;
use crate::mqtt::codec::{
    ConnectProperties, DecodeError, LastWill, PublishProperties, WillProperties,
};
use crate::qos::QoS;

fn session(settings: SessionSettings) -> (MqttSession, OutboxReceiver, Instant) {
    let (outbox, rx) = Outbox::channel();
    let now = Instant::now();
    (
        MqttSession::new(ConnId::next(), outbox, settings, now),
        rx,
        now,
    )
}

fn connect_packet(version: ProtocolVersion, id: &str, keep_alive: u16) -> Connect {
    Connect {
        protocol: version,
        clean_start: true,
        keep_alive,
        client_id: id.into(),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }
}

fn publish(topic: &str, qos: QoS, packet_id: Option<u16>) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.into(),
        packet_id,
        properties: PublishProperties::default(),
        payload: Bytes::from_static(b"x"),
    }
}

fn connected(version: ProtocolVersion) -> (MqttSession, OutboxReceiver, Instant) {
    let (mut s, rx, now) = session(SessionSettings::default());
    s.handle_packet(Packet::Connect(connect_packet(version, "c", 60)), now);
    assert!(matches!(s.poll_command(), Some(Command::Connect(_))));
    s.handle_outbound(
        Outbound::ConnAck {
            session_present: false,
        },
        now,
    );
    assert!(matches!(s.poll_packet(), Some(Packet::ConnAck(_))));
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

#[test]
fn first_packet_other_than_connect_closes_without_reply() {
    let (mut s, _rx, now) = session(SessionSettings::default());
    s.handle_packet(Packet::Publish(publish("t", QoS::AtMostOnce, None)), now);
    assert!(s.is_closing());
    assert!(packets(&mut s).is_empty());
    assert!(
        commands(&mut s).is_empty(),
        "the core never heard of this connection"
    );
}

#[test]
fn second_connect_closes_without_disconnect_and_publishes_the_will() {
    let (mut s, _rx, now) = connected(ProtocolVersion::V5);
    s.handle_packet(
        Packet::Connect(connect_packet(ProtocolVersion::V5, "c", 60)),
        now,
    );
    assert!(s.is_closing());
    assert_eq!(disconnect_reason(&mut s), None);
    assert!(matches!(
        commands(&mut s).as_slice(),
        [Command::Disconnect {
            kind: DisconnectKind::Abnormal,
            ..
        }]
    ));
}

#[test]
fn connection_without_connect_is_closed_after_the_timeout() {
    let (mut s, _rx, now) = session(SessionSettings::default());
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(10)));
    s.handle_timeout(now + Duration::from_secs(9));
    assert!(!s.is_closing());
    s.handle_timeout(now + Duration::from_secs(10));
    assert!(s.is_closing());
}

#[test]
fn keep_alive_expires_after_one_and_a_half_periods() {
    let (mut s, _rx, now) = connected(ProtocolVersion::V5);
    s.handle_packet(Packet::PingReq, now + Duration::from_secs(50));
    assert_eq!(packets(&mut s), vec![Packet::PingResp]);
    s.handle_timeout(now + Duration::from_secs(50 + 89));
    assert!(!s.is_closing());
    s.handle_timeout(now + Duration::from_secs(50 + 90));
    assert!(s.is_closing());
    assert_eq!(
        disconnect_reason(&mut s),
        Some(ReasonCode::KeepAliveTimeout)
    );
    assert!(matches!(
        commands(&mut s).as_slice(),
        [Command::Disconnect {
            kind: DisconnectKind::Abnormal,
            ..
        }]
    ));
}

#[test]
fn keep_alive_zero_means_no_timeout() {
    let (mut s, _rx, now) = session(SessionSettings::default());
    s.handle_packet(
        Packet::Connect(connect_packet(ProtocolVersion::V311, "c", 0)),
        now,
    );
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn keep_alive_above_maximum_is_held_and_told_to_v5_clients() {
    let settings = SessionSettings {
        max_keepalive: 30,
        ..SessionSettings::default()
    };
    let (mut s, _rx, now) = session(settings);
    s.handle_packet(
        Packet::Connect(connect_packet(ProtocolVersion::V5, "c", 600)),
        now,
    );
    s.handle_outbound(
        Outbound::ConnAck {
            session_present: false,
        },
        now,
    );
    match packets(&mut s).as_slice() {
        [Packet::ConnAck(c)] => assert_eq!(c.properties.server_keep_alive, Some(30)),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.keep_alive(), 30);
}

#[test]
fn empty_client_id_on_v5_gets_assigned_client_identifier() {
    let (mut s, _rx, now) = session(SessionSettings::default());
    s.handle_packet(
        Packet::Connect(connect_packet(ProtocolVersion::V5, "", 60)),
        now,
    );
    s.handle_outbound(
        Outbound::ConnAck {
            session_present: false,
        },
        now,
    );
    match packets(&mut s).as_slice() {
        [Packet::ConnAck(c)] => {
            let id = c
                .properties
                .assigned_client_identifier
                .clone()
                .expect("assigned");
            assert_eq!(Some(id.as_str()), s.client_id().map(|c| &**c));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn authentication_method_is_refused_with_0x8c() {
    let (mut s, _rx, now) = session(SessionSettings::default());
    let mut c = connect_packet(ProtocolVersion::V5, "c", 60);
    c.properties.authentication_method = Some("SCRAM-SHA-1".into());
    s.handle_packet(Packet::Connect(c), now);
    match packets(&mut s).as_slice() {
        [Packet::ConnAck(c)] => assert_eq!(c.code, 0x8C),
        other => panic!("{other:?}"),
    }
    assert!(s.is_closing());
}

#[test]
fn unsupported_protocol_level_gets_connack_1() {
    let (mut s, _rx, _now) = session(SessionSettings::default());
    s.handle_decode_error(&DecodeError::UnsupportedProtocolVersion {
        name: "MQTT".into(),
        level: 7,
    });
    match packets(&mut s).as_slice() {
        [Packet::ConnAck(c)] => assert_eq!(c.code, 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn invalid_will_topic_is_refused() {
    let (mut s, _rx, now) = session(SessionSettings::default());
    let mut c = connect_packet(ProtocolVersion::V311, "c", 60);
    c.will = Some(LastWill {
        topic: "a/#".into(),
        payload: Bytes::new(),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: WillProperties::default(),
    });
    s.handle_packet(Packet::Connect(c), now);
    assert!(s.is_closing());
    assert!(commands(&mut s).is_empty());
}

#[test]
fn wildcard_in_publish_topic_closes_with_0x90() {
    let (mut s, _rx, now) = connected(ProtocolVersion::V5);
    s.handle_packet(Packet::Publish(publish("a/+", QoS::AtMostOnce, None)), now);
    assert_eq!(
        disconnect_reason(&mut s),
        Some(ReasonCode::TopicNameInvalid)
    );
}

#[test]
fn topic_alias_zero_closes_with_0x94() {
    let (mut s, _rx, now) = connected(ProtocolVersion::V5);
    let mut p = publish("t", QoS::AtMostOnce, None);
    p.properties.topic_alias = Some(0);
    s.handle_packet(Packet::Publish(p), now);
    assert_eq!(
        disconnect_reason(&mut s),
        Some(ReasonCode::TopicAliasInvalid)
    );
}

#[test]
fn topic_alias_above_maximum_closes_with_0x94() {
    let (mut s, _rx, now) = connected(ProtocolVersion::V5);
    let mut p = publish("t", QoS::AtMostOnce, None);
    p.properties.topic_alias = Some(11);
    s.handle_packet(Packet::Publish(p), now);
    assert_eq!(
        disconnect_reason(&mut s),
        Some(ReasonCode::TopicAliasInvalid)
    );
}

#[test]
fn inbound_topic_alias_resolves_empty_topic() {
    let (mut s, _rx, now) = connected(ProtocolVersion::V5);
    let mut p = publish("a/b", QoS::AtMostOnce, None);
    p.properties.topic_alias = Some(1);
    s.handle_packet(Packet::Publish(p), now);
    let mut p = publish("", QoS::AtMostOnce, None);
    p.properties.topic_alias = Some(1);
    s.handle_packet(Packet::Publish(p), now);
    let topics: Vec<String> = commands(&mut s)
        .into_iter()
        .filter_map(|c| match c {
            Command::Publish { message, .. } => Some(message.topic.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(topics, vec!["a/b", "a/b"]);
}

/// Hands the session `n` PUBLISHes on `t` at `qos`, packet ids 1..=n.
fn publish_many(s: &mut MqttSession, qos: QoS, n: u16, now: Instant) {
    for id in 1..=n {
        s.handle_packet(Packet::Publish(publish("t", qos, Some(id))), now);
    }
}

#[test]
fn exceeding_receive_maximum_closes_with_0x93() {
    let (mut s, _rx, now) = connected(ProtocolVersion::V5);
    publish_many(&mut s, QoS::ExactlyOnce, 20, now);
    assert!(!s.is_closing());
    s.handle_packet(
        Packet::Publish(publish("t", QoS::ExactlyOnce, Some(21))),
        now,
    );
    assert_eq!(
        disconnect_reason(&mut s),
        Some(ReasonCode::ReceiveMaximumExceeded)
    );
}

/// The first byte of a PUBLISH with `qos` (what the connection peeks at).
fn publish_byte(qos: u8) -> [u8; 1] {
    [0x30 | (qos << 1)]
}

#[test]
fn a_qos1_publish_past_receive_maximum_is_held_back_until_a_puback_frees_room() {
    let (mut s, _rx, now) = connected(ProtocolVersion::V5);
    publish_many(&mut s, QoS::AtLeastOnce, 20, now);
    assert!(!s.is_closing());
    assert!(s.holds_back_publish(&publish_byte(1)), "window full");
    assert!(
        !s.holds_back_publish(&publish_byte(0)),
        "QoS 0 is not counted"
    );
    assert!(
        !s.holds_back_publish(&publish_byte(2)),
        "QoS 2 gets 0x93 instead"
    );
    s.handle_outbound(
        Outbound::PubAck {
            packet_id: 1,
            outcome: PublishOutcome::Delivered,
        },
        now,
    );
    assert!(!s.holds_back_publish(&publish_byte(1)), "room again");
}

#[test]
fn mqtt_3_1_1_has_no_receive_maximum_to_hold_back_for() {
    let (mut s, _rx, now) = connected(ProtocolVersion::V311);
    publish_many(&mut s, QoS::AtLeastOnce, 100, now);
    assert!(!s.holds_back_publish(&publish_byte(1)));
}

#[test]
fn graceful_disconnect_suppresses_the_will() {
    let (mut s, _rx, now) = connected(ProtocolVersion::V311);
    s.handle_packet(Packet::Disconnect(Disconnect::default()), now);
    assert!(matches!(
        commands(&mut s).as_slice(),
        [Command::Disconnect {
            kind: DisconnectKind::Graceful {
                publish_will: false,
                ..
            },
            ..
        }]
    ));
}

#[test]
fn disconnect_with_will_message_reason_publishes_the_will() {
    let (mut s, _rx, now) = connected(ProtocolVersion::V5);
    s.handle_packet(
        Packet::Disconnect(Disconnect {
            reason: ReasonCode::DisconnectWithWillMessage,
            properties: DisconnectProperties::default(),
        }),
        now,
    );
    assert!(matches!(
        commands(&mut s).as_slice(),
        [Command::Disconnect {
            kind: DisconnectKind::Graceful {
                publish_will: true,
                ..
            },
            ..
        }]
    ));
}

#[test]
fn session_expiry_cannot_be_set_at_disconnect_after_connecting_with_zero() {
    let (mut s, _rx, now) = connected(ProtocolVersion::V5);
    let mut d = Disconnect::default();
    d.properties.session_expiry_interval = Some(60);
    s.handle_packet(Packet::Disconnect(d), now);
    assert_eq!(disconnect_reason(&mut s), Some(ReasonCode::ProtocolError));
}

fn delivery(topic: &str, payload: usize, qos: QoS, packet_id: Option<u16>) -> Outbound {
    Outbound::Deliver(Delivery {
        packet_id,
        message: Message::new(topic, Bytes::from(vec![0u8; payload]), qos, false),
        dup: false,
        subscription_ids: vec![],
    })
}

#[test]
fn delivery_larger_than_client_maximum_is_dropped_and_released() {
    let (mut s, _rx, now) = session(SessionSettings::default());
    let mut c = connect_packet(ProtocolVersion::V5, "c", 60);
    c.properties.maximum_packet_size = Some(100);
    s.handle_packet(Packet::Connect(c), now);
    s.handle_outbound(
        Outbound::ConnAck {
            session_present: false,
        },
        now,
    );
    packets(&mut s);
    commands(&mut s);
    s.handle_outbound(delivery("t", 200, QoS::AtLeastOnce, Some(4)), now);
    assert!(packets(&mut s).is_empty());
    assert!(matches!(
        commands(&mut s).as_slice(),
        [Command::PubAck { packet_id: 4, .. }]
    ));
    s.handle_outbound(delivery("t", 10, QoS::AtMostOnce, None), now);
    assert_eq!(packets(&mut s).len(), 1);
}

#[test]
fn outbound_topic_alias_replaces_repeated_topic() {
    let (mut s, _rx, now) = session(SessionSettings::default());
    let mut c = connect_packet(ProtocolVersion::V5, "c", 60);
    c.properties.topic_alias_maximum = Some(4);
    s.handle_packet(Packet::Connect(c), now);
    s.handle_outbound(
        Outbound::ConnAck {
            session_present: false,
        },
        now,
    );
    packets(&mut s);
    s.handle_outbound(delivery("sensors/t", 1, QoS::AtMostOnce, None), now);
    s.handle_outbound(delivery("sensors/t", 1, QoS::AtMostOnce, None), now);
    let sent: Vec<(String, Option<u16>)> = packets(&mut s)
        .into_iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some((p.topic.to_string(), p.properties.topic_alias)),
            _ => None,
        })
        .collect();
    assert_eq!(
        sent,
        vec![("sensors/t".into(), Some(1)), (String::new(), Some(1))]
    );
}

#[test]
fn v311_client_gets_no_v5_properties_on_delivery() {
    let (mut s, _rx, now) = connected(ProtocolVersion::V311);
    let mut m = Message::new("t", Bytes::from_static(b"x"), QoS::AtMostOnce, false);
    m.properties = Some(std::sync::Arc::new(crate::broker::MessageProperties {
        content_type: Some("text/plain".into()),
        ..Default::default()
    }));
    s.handle_outbound(
        Outbound::Deliver(Delivery {
            packet_id: None,
            message: m,
            dup: false,
            subscription_ids: vec![3],
        }),
        now,
    );
    match packets(&mut s).as_slice() {
        [Packet::Publish(p)] => assert_eq!(p.properties, PublishProperties::default()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn session_taken_over_sends_0x8e_to_v5_client() {
    let (mut s, _rx, now) = connected(ProtocolVersion::V5);
    s.handle_outbound(
        Outbound::Disconnect(ServerDisconnect::SessionTakenOver),
        now,
    );
    assert_eq!(
        disconnect_reason(&mut s),
        Some(ReasonCode::SessionTakenOver)
    );
    assert!(
        commands(&mut s).is_empty(),
        "the core already detached this connection"
    );
}

#[test]
fn v311_subscribe_failure_is_0x80() {
    let (mut s, _rx, now) = connected(ProtocolVersion::V311);
    s.handle_outbound(
        Outbound::SubAck {
            packet_id: 1,
            results: vec![
                SubscribeResult::Failed,
                SubscribeResult::Granted(QoS::AtLeastOnce),
            ],
        },
        now,
    );
    match packets(&mut s).as_slice() {
        [Packet::SubAck(a)] => assert_eq!(
            a.reasons,
            vec![ReasonCode::UnspecifiedError, ReasonCode::GrantedQoS1]
        ),
        other => panic!("{other:?}"),
    }
}
