//! SUBSCRIBE / UNSUBSCRIBE and the topic representation of deliveries.

use super::*;
use crate::mqttsn::codec::{ReturnCode, SnQos, TopicFilterRef, TopicRef};

fn subscribe(h: &mut Harness, p: u16, qos: QoS, msg_id: u16, topic: TopicFilterRef) -> Message {
    h.send(
        p,
        Message::Subscribe {
            dup: false,
            qos,
            msg_id,
            topic,
        },
    );
    h.play_broker();
    h.replies_to(p).remove(0)
}

/// A message on `pre/five` (predefined id 5 in the harness) reaches sensor 1
/// as one PUBLISH with TopicIdType 0b01 and id 5.
fn assert_pre_five_is_delivered_with_its_predefined_id(h: &mut Harness, conn: ConnId) {
    h.outbound(conn, delivery("pre/five", b"v", QoS::AtMostOnce, None));
    let r = h.replies_to(1);
    assert!(
        matches!(
            &r[..],
            [Message::Publish {
                topic: TopicRef::Predefined(5),
                ..
            }]
        ),
        "{r:?}"
    );
}

#[test]
fn subscribe_to_a_plain_name_gets_suback_with_topic_id() {
    // G-51
    let mut h = Harness::new();
    let (_, ack) = h.connect_and_subscribe(1, "cl1", "a/b", QoS::AtLeastOnce);
    let Message::SubAck {
        qos,
        topic_id,
        msg_id: 1,
        code: ReturnCode::Accepted,
    } = ack
    else {
        panic!("{ack:?}")
    };
    assert_eq!(qos, QoS::AtLeastOnce);
    assert!(topic_id != 0 && topic_id != 0xFFFF);
}

#[test]
fn suback_reports_the_granted_qos_from_the_core() {
    // G-51: granted ≤ requested.
    let mut h = Harness::new();
    let conn = h.connect(1, "cl1", true);
    h.send(
        1,
        Message::Subscribe {
            dup: false,
            qos: QoS::ExactlyOnce,
            msg_id: 2,
            topic: TopicFilterRef::Name(Bytes::from_static(b"a")),
        },
    );
    h.commands();
    h.outbound(
        conn,
        Outbound::SubAck {
            packet_id: 2,
            results: vec![SubscribeResult::Granted(QoS::AtLeastOnce)],
        },
    );
    assert!(matches!(
        h.replies_to(1)[..],
        [Message::SubAck {
            qos: QoS::AtLeastOnce,
            ..
        }]
    ));
}

#[test]
fn deliveries_on_a_subscribed_name_use_the_suback_id_without_register() {
    // G-52
    let mut h = Harness::new();
    let (conn, Message::SubAck { topic_id, .. }) =
        h.connect_and_subscribe(1, "cl1", "a/b", QoS::AtMostOnce)
    else {
        panic!()
    };
    h.outbound(conn, delivery("a/b", b"v", QoS::AtMostOnce, None));
    let r = h.replies_to(1);
    assert!(
        matches!(&r[..], [Message::Publish { topic: TopicRef::Normal(t), .. }] if *t == topic_id),
        "{r:?}"
    );
}

#[test]
fn subscribe_to_a_wildcard_gets_topic_id_zero() {
    // G-53: `08 13 20 00 00 00 03 00`
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    h.raw(1, &[0x08, 0x12, 0x20, 0x00, 0x03, b'a', b'/', b'#']);
    h.play_broker();
    assert_eq!(
        h.raw_replies_to(1),
        vec![vec![0x08, 0x13, 0x20, 0x00, 0x00, 0x00, 0x03, 0x00]]
    );
}

#[test]
fn subscribe_to_a_predefined_id_echoes_it_and_deliveries_use_it() {
    // G-56
    let mut h = Harness::new();
    let conn = h.connect(1, "cl1", true);
    let ack = subscribe(&mut h, 1, QoS::AtMostOnce, 4, TopicFilterRef::Predefined(5));
    assert_eq!(
        ack,
        Message::SubAck {
            qos: QoS::AtMostOnce,
            topic_id: 5,
            msg_id: 4,
            code: ReturnCode::Accepted
        }
    );
    assert_pre_five_is_delivered_with_its_predefined_id(&mut h, conn);
}

#[test]
fn subscribe_to_an_unknown_predefined_id_gets_invalid_topic_id() {
    // G-57
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    h.raw(1, &[0x07, 0x12, 0x01, 0x00, 0x04, 0x00, 0x63]);
    assert_eq!(
        h.raw_replies_to(1),
        vec![vec![0x08, 0x13, 0x00, 0x00, 0x00, 0x00, 0x04, 0x02]]
    );
    assert!(h.commands().is_empty());
}

#[test]
fn subscribe_to_a_short_name_delivers_short_topic_publishes() {
    // G-58: `07 12 42 00 05 61 62`
    let mut h = Harness::new();
    let conn = h.connect(1, "cl1", true);
    h.raw(1, &[0x07, 0x12, 0x42, 0x00, 0x05, b'a', b'b']);
    let cmds = h.play_broker();
    assert!(
        cmds.iter().any(
            |c| matches!(c, Command::Subscribe { filters, .. } if &*filters[0].filter == "ab")
        )
    );
    assert!(matches!(
        h.replies_to(1)[..],
        [Message::SubAck {
            code: ReturnCode::Accepted,
            ..
        }]
    ));
    h.outbound(conn, delivery("ab", b"v", QoS::AtMostOnce, None));
    let r = h.raw_replies_to(1);
    assert_eq!(&r[0][..5], &[0x08, 0x0C, 0x02, b'a', b'b']);
}

#[test]
fn subscribe_with_reserved_topic_id_type_is_not_supported() {
    // G-59
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    h.raw(1, &[0x07, 0x12, 0x23, 0x00, 0x09, 0x00, 0x01]);
    assert_eq!(
        h.raw_replies_to(1),
        vec![vec![0x08, 0x13, 0x00, 0x00, 0x00, 0x00, 0x09, 0x03]]
    );
}

#[test]
fn retransmitted_subscribe_gets_the_same_topic_id() {
    // G-60
    let mut h = Harness::new();
    let (_, first) = h.connect_and_subscribe(1, "cl1", "a/b", QoS::AtMostOnce);
    h.send(
        1,
        Message::Subscribe {
            dup: true,
            qos: QoS::AtMostOnce,
            msg_id: 1,
            topic: TopicFilterRef::Name(Bytes::from_static(b"a/b")),
        },
    );
    h.play_broker();
    assert_eq!(h.replies_to(1), vec![first]);
}

#[test]
fn rejected_subscribe_has_qos_zero_and_topic_id_zero() {
    // G-61
    let mut h = Harness::new();
    let conn = h.connect(1, "cl1", true);
    h.send(
        1,
        Message::Subscribe {
            dup: false,
            qos: QoS::ExactlyOnce,
            msg_id: 8,
            topic: TopicFilterRef::Name(Bytes::from_static(b"a/b")),
        },
    );
    h.commands();
    h.outbound(
        conn,
        Outbound::SubAck {
            packet_id: 8,
            results: vec![SubscribeResult::NotAuthorized],
        },
    );
    assert_eq!(
        h.raw_replies_to(1),
        vec![vec![0x08, 0x13, 0x00, 0x00, 0x00, 0x00, 0x08, 0x03]]
    );
}

#[test]
fn unsubscribe_is_answered_with_unsuback_for_all_variants() {
    // G-62
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    h.raw(1, &[0x08, 0x14, 0x00, 0x00, 0x06, b'a', b'/', b'#']);
    h.play_broker();
    assert_eq!(h.raw_replies_to(1), vec![vec![0x04, 0x15, 0x00, 0x06]]);
    h.raw(1, &[0x07, 0x14, 0x01, 0x00, 0x07, 0x00, 0x63]);
    h.play_broker();
    assert_eq!(h.raw_replies_to(1), vec![vec![0x04, 0x15, 0x00, 0x07]]);
    h.raw(1, &[0x07, 0x14, 0x02, 0x00, 0x08, b'a', b'b']);
    h.play_broker();
    assert_eq!(h.raw_replies_to(1), vec![vec![0x04, 0x15, 0x00, 0x08]]);
}

#[test]
fn unsubscribe_is_passed_to_the_core() {
    // G-63: the core stops deliveries; UNSUBACK follows its answer.
    let mut h = Harness::new();
    h.connect_and_subscribe(1, "cl1", "a/b", QoS::AtMostOnce);
    h.send(
        1,
        Message::Unsubscribe {
            msg_id: 2,
            topic: TopicFilterRef::Name(Bytes::from_static(b"a/b")),
        },
    );
    let cmds = h.commands();
    assert!(cmds.iter().any(
        |c| matches!(c, Command::Unsubscribe { filters, packet_id: 2, .. } if &*filters[0] == "a/b")
    ));
    assert!(h.replies_to(1).is_empty());
}

#[test]
fn predefined_topic_is_preferred_for_deliveries_matching_a_wildcard() {
    // Digest §4.10 step 1
    let mut h = Harness::new();
    let (conn, _) = h.connect_and_subscribe(1, "cl1", "pre/#", QoS::AtMostOnce);
    h.outbound(conn, delivery("pre/six", b"v", QoS::AtMostOnce, None));
    let r = h.replies_to(1);
    assert!(
        matches!(
            &r[..],
            [Message::Publish {
                qos: SnQos::Level(QoS::AtMostOnce),
                topic: TopicRef::Predefined(6),
                ..
            }]
        ),
        "{r:?}"
    );
}

#[test]
fn subscribe_by_name_to_a_predefined_topic_announces_and_uses_the_predefined_id() {
    // Digest §4.10 step 1 with G-52: the SUBACK's id is the id deliveries carry.
    let mut h = Harness::new();
    let (conn, ack) = h.connect_and_subscribe(1, "cl1", "pre/five", QoS::AtMostOnce);
    assert!(
        matches!(
            ack,
            Message::SubAck {
                topic_id: 5,
                code: ReturnCode::Accepted,
                ..
            }
        ),
        "{ack:?}"
    );
    assert_pre_five_is_delivered_with_its_predefined_id(&mut h, conn);
}
