//! REGISTER/REGACK in both directions.

use std::time::Duration;

use super::*;
use crate::mqttsn::codec::{ReturnCode, TopicRef};

fn register(h: &mut Harness, p: u16, msg_id: u16, name: &str) -> Message {
    h.send(
        p,
        Message::Register {
            topic_id: 0,
            msg_id,
            topic_name: Bytes::copy_from_slice(name.as_bytes()),
        },
    );
    h.replies_to(p).remove(0)
}

#[test]
fn register_from_client_gets_regack_with_new_topic_id() {
    // G-27
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    h.raw(1, &[0x09, 0x0A, 0x00, 0x00, 0x00, 0x01, b'a', b'/', b'b']);
    let r = h.replies_to(1);
    let [
        Message::RegAck {
            topic_id,
            msg_id: 1,
            code: ReturnCode::Accepted,
        },
    ] = r[..]
    else {
        panic!("{r:?}")
    };
    assert!(topic_id != 0 && topic_id != 0xFFFF);
}

#[test]
fn registering_the_same_name_again_returns_the_same_id() {
    // G-28
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    let Message::RegAck { topic_id: a, .. } = register(&mut h, 1, 1, "a/b") else {
        panic!()
    };
    let Message::RegAck { topic_id: b, .. } = register(&mut h, 1, 2, "a/b") else {
        panic!()
    };
    assert_eq!(a, b);
}

#[test]
fn topic_ids_are_per_client() {
    // G-29
    let mut h = Harness::new();
    h.connect(1, "a", true);
    h.connect(2, "b", true);
    let Message::RegAck { topic_id, .. } = register(&mut h, 1, 1, "x/y") else {
        panic!()
    };
    h.send(
        2,
        Message::Publish {
            dup: false,
            qos: codec::SnQos::Level(QoS::AtLeastOnce),
            retain: false,
            topic: TopicRef::Normal(topic_id),
            msg_id: 9,
            data: Bytes::new(),
        },
    );
    assert_eq!(
        h.replies_to(2),
        vec![Message::PubAck {
            topic_id,
            msg_id: 9,
            code: ReturnCode::InvalidTopicId
        }]
    );
}

#[test]
fn register_with_wildcard_is_not_supported() {
    // G-30
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    assert_eq!(
        register(&mut h, 1, 4, "a/#"),
        Message::RegAck {
            topic_id: 0,
            msg_id: 4,
            code: ReturnCode::NotSupported
        }
    );
    assert_eq!(
        register(&mut h, 1, 5, "a/+/c"),
        Message::RegAck {
            topic_id: 0,
            msg_id: 5,
            code: ReturnCode::NotSupported
        }
    );
}

#[test]
fn normal_ids_never_coincide_with_predefined_ids() {
    // G-31: predefined ids 5 and 6 are configured.
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    for i in 0..20u16 {
        let Message::RegAck { topic_id, .. } = register(&mut h, 1, i + 1, &format!("t/{i}")) else {
            panic!()
        };
        assert!(topic_id > 6, "{topic_id}");
    }
}

#[test]
fn register_beyond_the_topic_limit_gets_congestion() {
    // Digest §5.18
    let mut h = Harness::with(GatewaySettings {
        max_topics_per_sensor: 1,
        ..settings()
    });
    h.connect(1, "cl1", true);
    register(&mut h, 1, 1, "a");
    assert_eq!(
        register(&mut h, 1, 2, "b"),
        Message::RegAck {
            topic_id: 0,
            msg_id: 2,
            code: ReturnCode::Congestion
        }
    );
}

/// Subscribes to a wildcard, delivers one QoS 1 message on `topic`; returns
/// the conn and the REGISTER the gateway sent.
fn wildcard_delivery(h: &mut Harness, topic: &str) -> (ConnId, Message) {
    let (conn, _) = h.connect_and_subscribe(1, "cl1", "s/#", QoS::AtLeastOnce);
    h.outbound(conn, delivery(topic, b"v", QoS::AtLeastOnce, Some(7)));
    let mut r = h.replies_to(1);
    assert_eq!(r.len(), 1, "{r:?}");
    (conn, r.remove(0))
}

#[test]
fn first_message_on_a_wildcard_match_is_preceded_by_register() {
    // G-54
    let mut h = Harness::new();
    let (_, reg) = wildcard_delivery(&mut h, "s/temp");
    let Message::Register {
        topic_id,
        msg_id,
        topic_name,
    } = reg
    else {
        panic!("{reg:?}")
    };
    assert_eq!(&topic_name[..], b"s/temp");
    h.send(
        1,
        Message::RegAck {
            topic_id,
            msg_id,
            code: ReturnCode::Accepted,
        },
    );
    let r = h.replies_to(1);
    assert!(
        matches!(
            &r[..],
            [Message::Publish { topic: TopicRef::Normal(t), msg_id: 7, .. }] if *t == topic_id
        ),
        "{r:?}"
    );
}

#[test]
fn rejected_register_stops_delivery_of_that_topic() {
    // G-55
    let mut h = Harness::new();
    let (conn, reg) = wildcard_delivery(&mut h, "s/temp");
    let Message::Register {
        topic_id, msg_id, ..
    } = reg
    else {
        panic!()
    };
    h.send(
        1,
        Message::RegAck {
            topic_id,
            msg_id,
            code: ReturnCode::NotSupported,
        },
    );
    assert!(h.replies_to(1).is_empty());
    // The core is told the delivery is done.
    assert!(
        h.commands()
            .iter()
            .any(|c| matches!(c, Command::PubAck { packet_id: 7, .. }))
    );
    h.outbound(conn, delivery("s/temp", b"v", QoS::AtMostOnce, None));
    assert!(h.replies_to(1).is_empty());
}

#[test]
fn puback_invalid_topic_id_makes_the_gateway_register_again() {
    // G-67
    let mut h = Harness::new();
    let (conn, reg) = wildcard_delivery(&mut h, "s/temp");
    let Message::Register {
        topic_id, msg_id, ..
    } = reg
    else {
        panic!()
    };
    h.send(
        1,
        Message::RegAck {
            topic_id,
            msg_id,
            code: ReturnCode::Accepted,
        },
    );
    h.replies_to(1);
    h.send(
        1,
        Message::PubAck {
            topic_id,
            msg_id: 7,
            code: ReturnCode::InvalidTopicId,
        },
    );
    h.outbound(conn, delivery("s/temp", b"w", QoS::AtMostOnce, None));
    let r = h.replies_to(1);
    assert!(matches!(&r[..], [Message::Register { .. }]), "{r:?}");
}

#[test]
fn only_one_gateway_register_is_outstanding_and_it_is_retried() {
    // G-69
    let mut h = Harness::new();
    let (conn, _) = wildcard_delivery(&mut h, "s/a");
    h.outbound(conn, delivery("s/b", b"v", QoS::AtMostOnce, None));
    assert!(h.replies_to(1).is_empty(), "second REGISTER waits");
    h.advance(Duration::from_secs(10));
    let r = h.replies_to(1);
    assert!(
        matches!(&r[..], [Message::Register { topic_name, .. }] if &topic_name[..] == b"s/a"),
        "{r:?}"
    );
}

#[test]
fn unanswered_register_makes_the_client_lost_after_n_retry() {
    // G-69, G-66
    let mut h = Harness::new();
    wildcard_delivery(&mut h, "s/a");
    for _ in 0..5 {
        h.advance(Duration::from_secs(10));
        h.send(1, Message::PingReq { client_id: None });
    }
    assert!(!has_abnormal_disconnect(&h.commands()));
    h.advance(Duration::from_secs(10));
    assert!(has_abnormal_disconnect(&h.commands()));
}
