//! Client publish (all QoS levels, QoS −1) and gateway publish to the client.

use std::time::Duration;

use super::*;
use crate::mqttsn::codec::{ReturnCode, SnQos, TopicRef};

fn registered(h: &mut Harness, p: u16, id: &str, name: &str) -> (ConnId, u16) {
    let conn = h.connect(p, id, true);
    h.send(
        p,
        Message::Register {
            topic_id: 0,
            msg_id: 1,
            topic_name: Bytes::copy_from_slice(name.as_bytes()),
        },
    );
    let Message::RegAck { topic_id, .. } = h.replies_to(p)[0] else {
        panic!()
    };
    (conn, topic_id)
}

fn publish(qos: SnQos, topic: TopicRef, msg_id: u16, data: &'static [u8]) -> Message {
    Message::Publish {
        dup: false,
        qos,
        retain: false,
        topic,
        msg_id,
        data: Bytes::from_static(data),
    }
}

fn published(cmds: &[Command]) -> Vec<(Option<u16>, BrokerMessage)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Publish {
                packet_id, message, ..
            } => Some((*packet_id, message.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn qos0_publish_is_forwarded_on_the_registered_name_without_reply() {
    // G-32
    let mut h = Harness::new();
    let (_, t) = registered(&mut h, 1, "cl1", "a/b");
    h.send(
        1,
        publish(SnQos::Level(QoS::AtMostOnce), TopicRef::Normal(t), 0, b"hi"),
    );
    let p = published(&h.play_broker());
    assert_eq!(p.len(), 1);
    assert_eq!(&*p[0].1.topic, "a/b");
    assert_eq!(p[0].1.qos, QoS::AtMostOnce);
    assert_eq!(p[0].0, None);
    assert!(h.replies_to(1).is_empty());
}

#[test]
fn qos1_publish_is_forwarded_and_answered_with_puback() {
    // G-33
    let mut h = Harness::new();
    let (_, t) = registered(&mut h, 1, "cl1", "a/b");
    h.send(
        1,
        publish(
            SnQos::Level(QoS::AtLeastOnce),
            TopicRef::Normal(t),
            2,
            b"hi",
        ),
    );
    let p = published(&h.play_broker());
    assert_eq!(p[0].0, Some(2));
    assert_eq!(p[0].1.qos, QoS::AtLeastOnce);
    let [a, b] = t.to_be_bytes();
    assert_eq!(
        h.raw_replies_to(1),
        vec![vec![0x07, 0x0D, a, b, 0x00, 0x02, 0x00]]
    );
}

#[test]
fn qos2_publish_flow_delivers_exactly_once() {
    // G-34
    let mut h = Harness::new();
    let (_, t) = registered(&mut h, 1, "cl1", "a/b");
    h.send(
        1,
        publish(SnQos::Level(QoS::ExactlyOnce), TopicRef::Normal(t), 3, b"x"),
    );
    assert_eq!(published(&h.play_broker()).len(), 1);
    assert_eq!(h.replies_to(1), vec![Message::PubRec { msg_id: 3 }]);
    h.send(1, Message::PubRel { msg_id: 3 });
    h.play_broker();
    assert_eq!(h.replies_to(1), vec![Message::PubComp { msg_id: 3 }]);
}

#[test]
fn retransmitted_qos2_publish_before_pubrel_gets_pubrec_and_is_not_redelivered() {
    // G-35
    let mut h = Harness::new();
    let (_, t) = registered(&mut h, 1, "cl1", "a/b");
    h.send(
        1,
        publish(SnQos::Level(QoS::ExactlyOnce), TopicRef::Normal(t), 3, b"x"),
    );
    h.play_broker();
    h.replies_to(1);
    h.send(
        1,
        Message::Publish {
            dup: true,
            qos: SnQos::Level(QoS::ExactlyOnce),
            retain: false,
            topic: TopicRef::Normal(t),
            msg_id: 3,
            data: Bytes::from_static(b"x"),
        },
    );
    assert!(published(&h.play_broker()).is_empty());
    assert_eq!(h.replies_to(1), vec![Message::PubRec { msg_id: 3 }]);
}

#[test]
fn pubrel_for_unknown_msg_id_gets_pubcomp() {
    // G-36: the core answers PubComp{found: false}.
    let mut h = Harness::new();
    let conn = h.connect(1, "cl1", true);
    h.send(1, Message::PubRel { msg_id: 77 });
    assert!(
        h.commands()
            .iter()
            .any(|c| matches!(c, Command::PubRel { packet_id: 77, .. }))
    );
    h.outbound(
        conn,
        Outbound::PubComp {
            packet_id: 77,
            found: false,
        },
    );
    assert_eq!(h.replies_to(1), vec![Message::PubComp { msg_id: 77 }]);
}

#[test]
fn qos1_publish_with_unknown_id_gets_puback_invalid_topic_and_is_not_forwarded() {
    // G-37
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    h.send(
        1,
        publish(
            SnQos::Level(QoS::AtLeastOnce),
            TopicRef::Normal(0x0102),
            4,
            b"x",
        ),
    );
    assert!(published(&h.commands()).is_empty());
    assert_eq!(
        h.replies_to(1),
        vec![Message::PubAck {
            topic_id: 0x0102,
            msg_id: 4,
            code: ReturnCode::InvalidTopicId
        }]
    );
}

#[test]
fn qos2_publish_with_unknown_id_gets_puback_not_pubrec() {
    // G-38
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    h.send(
        1,
        publish(
            SnQos::Level(QoS::ExactlyOnce),
            TopicRef::Normal(0x0102),
            4,
            b"x",
        ),
    );
    assert_eq!(
        h.replies_to(1),
        vec![Message::PubAck {
            topic_id: 0x0102,
            msg_id: 4,
            code: ReturnCode::InvalidTopicId
        }]
    );
}

#[test]
fn qos0_publish_with_unknown_id_gets_puback_with_msg_id_zero() {
    // G-39
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    h.send(
        1,
        publish(
            SnQos::Level(QoS::AtMostOnce),
            TopicRef::Normal(0x0102),
            9,
            b"x",
        ),
    );
    assert_eq!(
        h.replies_to(1),
        vec![Message::PubAck {
            topic_id: 0x0102,
            msg_id: 0,
            code: ReturnCode::InvalidTopicId
        }]
    );
}

#[test]
fn publish_with_unknown_predefined_id_gets_puback_invalid_topic() {
    // G-40: id 6 is configured for "cl1" only.
    let mut h = Harness::new();
    h.connect(1, "other", true);
    h.send(
        1,
        publish(
            SnQos::Level(QoS::AtLeastOnce),
            TopicRef::Predefined(6),
            4,
            b"x",
        ),
    );
    assert_eq!(
        h.replies_to(1),
        vec![Message::PubAck {
            topic_id: 6,
            msg_id: 4,
            code: ReturnCode::InvalidTopicId
        }]
    );
}

#[test]
fn short_topic_publish_is_forwarded_to_the_two_character_topic() {
    // G-41
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    h.raw(1, &[0x09, 0x0C, 0x02, b'a', b'b', 0x00, 0x00, b'h', b'i']);
    let p = published(&h.commands());
    assert_eq!(&*p[0].1.topic, "ab");
    assert_eq!(&p[0].1.payload[..], b"hi");
}

#[test]
fn predefined_publish_is_forwarded_to_the_configured_name() {
    // G-42: global id 5 and per-client id 6.
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    h.send(
        1,
        publish(
            SnQos::Level(QoS::AtMostOnce),
            TopicRef::Predefined(5),
            0,
            b"x",
        ),
    );
    h.send(
        1,
        publish(
            SnQos::Level(QoS::AtMostOnce),
            TopicRef::Predefined(6),
            0,
            b"x",
        ),
    );
    let p = published(&h.commands());
    assert_eq!(&*p[0].1.topic, "pre/five");
    assert_eq!(&*p[1].1.topic, "pre/six");
    assert!(h.replies_to(1).is_empty());
}

#[test]
fn predefined_ids_replaced_at_run_time_apply_to_a_connected_sensor() {
    // G-42 after a config reload: the connected sensor keeps its session and
    // its next PUBLISH with the new id is forwarded to the new name.
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    h.gw.set_predefined(&[PredefinedTopic {
        topic_id: 9,
        topic: "pre/nine".into(),
        client_id: None,
    }]);
    let p9 = publish(
        SnQos::Level(QoS::AtMostOnce),
        TopicRef::Predefined(9),
        0,
        b"x",
    );
    h.send(1, p9);
    let p = published(&h.commands());
    assert_eq!(p.len(), 1);
    assert_eq!(&*p[0].1.topic, "pre/nine");
}

#[test]
fn retain_flag_is_carried_to_the_broker() {
    // G-43
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    h.raw(1, &[0x09, 0x0C, 0x12, b'a', b'b', 0x00, 0x00, b'h', b'i']);
    assert!(published(&h.commands())[0].1.retain);
}

#[test]
fn qos1_publish_while_congested_gets_puback_congestion() {
    // G-44
    let mut h = Harness::with(GatewaySettings {
        max_buffered_messages: 1,
        ..settings()
    });
    let (_, t) = registered(&mut h, 1, "cl1", "a/b");
    h.send(
        1,
        publish(SnQos::Level(QoS::AtLeastOnce), TopicRef::Normal(t), 1, b"x"),
    );
    h.send(
        1,
        publish(SnQos::Level(QoS::AtLeastOnce), TopicRef::Normal(t), 2, b"x"),
    );
    assert_eq!(
        h.replies_to(1),
        vec![Message::PubAck {
            topic_id: t,
            msg_id: 2,
            code: ReturnCode::Congestion
        }]
    );
}

#[test]
fn broker_refusal_of_a_publish_maps_to_a_return_code() {
    // Digest §5.7
    let mut h = Harness::new();
    let (conn, t) = registered(&mut h, 1, "cl1", "a/b");
    h.send(
        1,
        publish(SnQos::Level(QoS::AtLeastOnce), TopicRef::Normal(t), 1, b"x"),
    );
    h.commands();
    h.outbound(
        conn,
        Outbound::PubAck {
            packet_id: 1,
            outcome: PublishOutcome::NotAuthorized,
        },
    );
    assert_eq!(
        h.replies_to(1),
        vec![Message::PubAck {
            topic_id: t,
            msg_id: 1,
            code: ReturnCode::NotSupported
        }]
    );
}

#[test]
fn publish_with_reserved_topic_id_type_gets_puback_not_supported() {
    // G-45
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    h.raw(1, &[0x09, 0x0C, 0x23, 0x00, 0x01, 0x00, 0x05, b'h', b'i']);
    assert_eq!(
        h.replies_to(1),
        vec![Message::PubAck {
            topic_id: 1,
            msg_id: 5,
            code: ReturnCode::NotSupported
        }]
    );
    assert!(h.commands().is_empty());
}

#[test]
fn qos0_publish_with_nonzero_msg_id_is_accepted() {
    // G-46
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    h.raw(1, &[0x09, 0x0C, 0x02, b'a', b'b', 0x12, 0x34, b'h', b'i']);
    assert_eq!(published(&h.commands()).len(), 1);
    assert!(h.replies_to(1).is_empty());
}

#[test]
fn qos_minus_one_predefined_publish_without_session_is_published_at_qos0_silently() {
    // G-47: `09 0C 61 00 05 00 00 68 69`
    let mut h = Harness::new();
    h.raw(1, &[0x09, 0x0C, 0x61, 0x00, 0x05, 0x00, 0x00, b'h', b'i']);
    let cmds = h.commands();
    assert!(matches!(&cmds[..], [Command::PublishInternal { message }]
        if &*message.topic == "pre/five" && message.qos == QoS::AtMostOnce && &message.payload[..] == b"hi"));
    assert!(h.transmits().is_empty());
    assert_eq!(h.gw.session_count(), 0);
}

#[test]
fn qos_minus_one_short_name_publish_without_session_is_published_silently() {
    // G-48
    let mut h = Harness::new();
    h.raw(1, &[0x09, 0x0C, 0x62, b'a', b'b', 0x00, 0x00, b'h', b'i']);
    assert!(
        matches!(&h.commands()[..], [Command::PublishInternal { message }] if &*message.topic == "ab")
    );
    assert!(h.transmits().is_empty());
}

#[test]
fn qos_minus_one_normal_or_unknown_id_without_session_is_dropped_silently() {
    // G-49
    let mut h = Harness::new();
    h.raw(1, &[0x09, 0x0C, 0x60, 0x00, 0x05, 0x00, 0x00, b'h', b'i']);
    h.raw(1, &[0x09, 0x0C, 0x61, 0x00, 0x63, 0x00, 0x00, b'h', b'i']);
    assert!(h.commands().is_empty());
    assert!(h.transmits().is_empty());
}

#[test]
fn qos_minus_one_is_dropped_when_disabled() {
    let mut h = Harness::with(GatewaySettings {
        allow_qos_minus_one: false,
        ..settings()
    });
    h.raw(1, &[0x09, 0x0C, 0x61, 0x00, 0x05, 0x00, 0x00, b'h', b'i']);
    assert!(h.commands().is_empty());
}

#[test]
fn gateway_publishes_qos0_with_msg_id_zero_and_never_qos_minus_one() {
    // G-64, G-50
    let mut h = Harness::new();
    let (conn, _) = h.connect_and_subscribe(1, "cl1", "a/b", QoS::AtMostOnce);
    h.outbound(conn, delivery("a/b", b"v", QoS::AtMostOnce, None));
    let r = h.raw_replies_to(1);
    assert_eq!(r[0][2] & 0x60, 0x00, "QoS 0 bits");
    assert_eq!(&r[0][5..7], &[0, 0]);
}

#[test]
fn gateway_publish_uses_the_granted_qos_from_the_core() {
    // G-65: the core sends `message.qos` = min(original, granted).
    let mut h = Harness::new();
    let (conn, _) = h.connect_and_subscribe(1, "cl1", "a/b", QoS::AtLeastOnce);
    h.outbound(conn, delivery("a/b", b"v", QoS::AtLeastOnce, Some(3)));
    let r = h.replies_to(1);
    assert!(
        matches!(
            &r[..],
            [Message::Publish {
                qos: SnQos::Level(QoS::AtLeastOnce),
                msg_id: 3,
                ..
            }]
        ),
        "{r:?}"
    );
}

#[test]
fn unacknowledged_publish_is_resent_with_dup_then_client_lost() {
    // G-66
    let mut h = Harness::new();
    let (conn, _) = h.connect_and_subscribe(1, "cl1", "a/b", QoS::AtLeastOnce);
    h.outbound(conn, delivery("a/b", b"v", QoS::AtLeastOnce, Some(3)));
    h.replies_to(1);
    h.advance(Duration::from_secs(10));
    let r = h.replies_to(1);
    assert!(
        matches!(
            &r[..],
            [Message::Publish {
                dup: true,
                msg_id: 3,
                ..
            }]
        ),
        "{r:?}"
    );
    for _ in 0..4 {
        h.send(1, Message::PingReq { client_id: None });
        h.advance(Duration::from_secs(10));
    }
    assert!(!has_abnormal_disconnect(&h.commands()));
    h.advance(Duration::from_secs(10));
    assert!(has_abnormal_disconnect(&h.commands()));
}

#[test]
fn client_puback_is_passed_to_the_core() {
    let mut h = Harness::new();
    let (conn, Message::SubAck { topic_id, .. }) =
        h.connect_and_subscribe(1, "cl1", "a/b", QoS::AtLeastOnce)
    else {
        panic!()
    };
    h.outbound(conn, delivery("a/b", b"v", QoS::AtLeastOnce, Some(3)));
    h.replies_to(1);
    h.send(
        1,
        Message::PubAck {
            topic_id,
            msg_id: 3,
            code: ReturnCode::Accepted,
        },
    );
    assert!(
        h.commands()
            .iter()
            .any(|c| matches!(c, Command::PubAck { packet_id: 3, .. }))
    );
    h.advance(Duration::from_secs(30));
    assert!(h.replies_to(1).is_empty(), "no retransmission after PUBACK");
}

#[test]
fn qos2_delivery_runs_pubrec_pubrel_pubcomp() {
    let mut h = Harness::new();
    let (conn, _) = h.connect_and_subscribe(1, "cl1", "a/b", QoS::ExactlyOnce);
    h.outbound(conn, delivery("a/b", b"v", QoS::ExactlyOnce, Some(4)));
    h.replies_to(1);
    h.send(1, Message::PubRec { msg_id: 4 });
    assert!(
        h.commands()
            .iter()
            .any(|c| matches!(c, Command::PubRec { packet_id: 4, .. }))
    );
    h.outbound(conn, Outbound::PubRel { packet_id: 4 });
    assert_eq!(h.raw_replies_to(1), vec![vec![0x04, 0x10, 0x00, 0x04]]);
    h.send(1, Message::PubComp { msg_id: 4 });
    assert!(
        h.commands()
            .iter()
            .any(|c| matches!(c, Command::PubComp { packet_id: 4, .. }))
    );
}

#[test]
fn delivery_too_large_for_the_client_is_dropped_silently() {
    // G-68
    let mut h = Harness::with(GatewaySettings {
        max_message_size: 60,
        ..settings()
    });
    let (conn, _) = h.connect_and_subscribe(1, "cl1", "a/b", QoS::AtLeastOnce);
    h.outbound(
        conn,
        delivery("a/b", &[0u8; 100], QoS::AtLeastOnce, Some(5)),
    );
    assert!(h.replies_to(1).is_empty());
    assert!(
        h.commands()
            .iter()
            .any(|c| matches!(c, Command::PubAck { packet_id: 5, .. }))
    );
}

#[test]
fn qos_minus_one_from_a_connected_client_resolves_normal_ids() {
    // Digest §5.9
    let mut h = Harness::new();
    let (conn, t) = registered(&mut h, 1, "cl1", "a/b");
    let [a, b] = t.to_be_bytes();
    h.raw(1, &[0x09, 0x0C, 0x60, a, b, 0x00, 0x00, b'h', b'i']);
    let cmds = h.commands();
    assert!(
        matches!(&cmds[..], [Command::Publish { conn: c, packet_id: None, message }]
        if *c == conn && &*message.topic == "a/b" && message.qos == QoS::AtMostOnce)
    );
    assert!(h.replies_to(1).is_empty());
}
