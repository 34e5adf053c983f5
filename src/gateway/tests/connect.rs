//! Connection setup, clean session, keep-alive and disconnect.

use std::time::Duration;

use super::*;
use crate::mqttsn::codec::ReturnCode;

#[test]
fn connect_without_will_gets_connack_accepted() {
    // G-14
    let mut h = Harness::new();
    h.raw(1, &[0x09, 0x04, 0x04, 0x01, 0x00, 0x3C, b'c', b'l', b'1']);
    let cmds = h.play_broker();
    assert!(matches!(&cmds[..], [Command::Connect(r)] if &*r.client_id == "cl1" && r.clean_start));
    assert_eq!(h.raw_replies_to(1), vec![vec![0x03, 0x05, 0x00]]);
}

#[test]
fn connect_is_not_answered_before_the_broker_accepts() {
    // G-14: the CONNACK follows the core's ConnAck.
    let mut h = Harness::new();
    h.send(1, connect_msg("cl1", true, false, 60));
    assert!(h.replies_to(1).is_empty());
}

#[test]
fn connect_maps_to_a_broker_connect_request() {
    // Brief: receive maximum, session expiry, kind.
    let mut h = Harness::new();
    h.send(1, connect_msg("cl1", false, false, 60));
    let cmds = h.commands();
    let Some(Command::Connect(r)) = cmds.first() else {
        panic!("no connect")
    };
    assert!(!r.clean_start);
    assert_eq!(r.session_expiry, 86_400);
    assert_eq!(r.receive_maximum, 100);
    assert_eq!(r.kind, crate::broker::ClientKind::MqttSn);
    assert!(r.will.is_none());
}

#[test]
fn connect_with_protocol_id_other_than_1_gets_connack_not_supported() {
    // G-19
    let mut h = Harness::new();
    h.raw(1, &[0x09, 0x04, 0x04, 0x02, 0x00, 0x3C, b'c', b'l', b'1']);
    assert_eq!(h.raw_replies_to(1), vec![vec![0x03, 0x05, 0x03]]);
    assert!(h.commands().is_empty());
}

#[test]
fn connect_with_empty_client_id_gets_connack_not_supported() {
    // G-20
    let mut h = Harness::new();
    h.raw(1, &[0x06, 0x04, 0x04, 0x01, 0x00, 0x3C]);
    assert_eq!(h.raw_replies_to(1), vec![vec![0x03, 0x05, 0x03]]);
}

#[test]
fn connect_with_too_long_client_id_gets_connack_not_supported() {
    // G-20
    let mut h = Harness::with(GatewaySettings {
        max_client_id_len: 23,
        ..settings()
    });
    h.send(1, connect_msg(&"x".repeat(24), true, false, 60));
    assert_eq!(
        h.replies_to(1),
        vec![Message::ConnAck {
            code: ReturnCode::NotSupported
        }]
    );
}

#[test]
fn connect_while_broker_unreachable_gets_connack_congestion() {
    // G-21
    let mut h = Harness::new();
    let now = h.now;
    h.gw.set_broker_available(now, false);
    h.send(1, connect_msg("cl1", true, false, 60));
    assert_eq!(
        h.replies_to(1),
        vec![Message::ConnAck {
            code: ReturnCode::Congestion
        }]
    );
}

#[test]
fn connect_beyond_max_sensors_gets_connack_congestion() {
    // G-21
    let mut h = Harness::with(GatewaySettings {
        max_sensors: 1,
        ..settings()
    });
    h.connect(1, "a", true);
    h.send(2, connect_msg("b", true, false, 60));
    assert_eq!(
        h.replies_to(2),
        vec![Message::ConnAck {
            code: ReturnCode::Congestion
        }]
    );
}

#[test]
fn clean_session_connect_asks_the_core_to_discard_the_session() {
    // G-22: subscriptions live in the core; clean_start discards them.
    let mut h = Harness::new();
    h.connect(1, "cl1", false);
    h.send(1, Message::Disconnect { duration: None });
    h.commands();
    h.send(1, connect_msg("cl1", true, false, 60));
    let cmds = h.commands();
    assert!(matches!(&cmds[..], [Command::Connect(r)] if r.clean_start && r.will.is_none()));
}

#[test]
fn persistent_reconnect_without_will_flag_keeps_the_stored_will() {
    // G-23
    let mut h = Harness::new();
    h.send(1, connect_msg("cl1", false, true, 60));
    h.send(
        1,
        Message::WillTopic(Some(codec::WillTopic {
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: Bytes::from_static(b"w/t"),
        })),
    );
    h.send(
        1,
        Message::WillMsg {
            message: Bytes::from_static(b"bye"),
        },
    );
    h.play_broker();
    h.send(1, Message::Disconnect { duration: None });
    h.commands();
    h.send(1, connect_msg("cl1", false, false, 60));
    let cmds = h.commands();
    let Some(Command::Connect(r)) = cmds.first() else {
        panic!("no connect")
    };
    let will = r.will.as_ref().expect("stored will re-sent");
    assert_eq!(&*will.message.topic, "w/t");
    assert_eq!(&will.message.payload[..], b"bye");
}

#[test]
fn persistent_reconnect_with_will_flag_replaces_the_stored_will() {
    // G-24
    let mut h = Harness::new();
    h.send(1, connect_msg("cl1", false, true, 60));
    h.send(
        1,
        Message::WillTopic(Some(codec::WillTopic {
            qos: QoS::AtMostOnce,
            retain: false,
            topic: Bytes::from_static(b"old"),
        })),
    );
    h.send(
        1,
        Message::WillMsg {
            message: Bytes::from_static(b"1"),
        },
    );
    h.play_broker();
    h.send(1, Message::Disconnect { duration: None });
    h.commands();
    h.send(1, connect_msg("cl1", false, true, 60));
    h.send(
        1,
        Message::WillTopic(Some(codec::WillTopic {
            qos: QoS::AtMostOnce,
            retain: false,
            topic: Bytes::from_static(b"new"),
        })),
    );
    h.send(
        1,
        Message::WillMsg {
            message: Bytes::from_static(b"2"),
        },
    );
    let cmds = h.commands();
    let Some(Command::Connect(r)) = cmds.first() else {
        panic!("no connect")
    };
    assert!(!r.clean_start);
    assert_eq!(&*r.will.as_ref().unwrap().message.topic, "new");
}

#[test]
fn retransmitted_connect_within_t_retry_gets_same_connack_without_reset() {
    // G-25
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    h.advance(Duration::from_secs(2));
    h.send(1, connect_msg("cl1", true, false, 60));
    assert!(h.commands().is_empty(), "no new broker session");
    assert_eq!(
        h.replies_to(1),
        vec![Message::ConnAck {
            code: ReturnCode::Accepted
        }]
    );
}

#[test]
fn clean_session_discards_normal_registrations_but_not_predefined_ids() {
    // G-26
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    h.send(
        1,
        Message::Register {
            topic_id: 0,
            msg_id: 1,
            topic_name: Bytes::from_static(b"a/b"),
        },
    );
    let Message::RegAck { topic_id, .. } = h.replies_to(1)[0] else {
        panic!()
    };
    h.advance(Duration::from_secs(11));
    h.send(1, connect_msg("cl1", true, false, 60));
    h.play_broker();
    h.replies_to(1);
    h.send(
        1,
        Message::Publish {
            dup: false,
            qos: codec::SnQos::Level(QoS::AtLeastOnce),
            retain: false,
            topic: codec::TopicRef::Normal(topic_id),
            msg_id: 2,
            data: Bytes::new(),
        },
    );
    assert_eq!(
        h.replies_to(1),
        vec![Message::PubAck {
            topic_id,
            msg_id: 2,
            code: ReturnCode::InvalidTopicId
        }]
    );
    h.send(
        1,
        Message::Publish {
            dup: false,
            qos: codec::SnQos::Level(QoS::AtMostOnce),
            retain: false,
            topic: codec::TopicRef::Predefined(5),
            msg_id: 0,
            data: Bytes::new(),
        },
    );
    assert!(h.replies_to(1).is_empty());
    assert!(
        matches!(&h.commands()[..], [Command::Publish { message, .. }] if &*message.topic == "pre/five")
    );
}

#[test]
fn pingreq_from_active_client_gets_pingresp() {
    // G-70
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    h.raw(1, &[0x02, 0x16]);
    assert_eq!(h.raw_replies_to(1), vec![vec![0x02, 0x17]]);
}

#[test]
fn silent_client_is_lost_after_keep_alive_tolerance_and_will_published() {
    // G-71: 60 s keep-alive ⇒ ×1.5 = 90 s.
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    h.advance(Duration::from_secs(89));
    assert!(!has_abnormal_disconnect(&h.commands()));
    h.advance(Duration::from_secs(2));
    assert!(has_abnormal_disconnect(&h.commands()));
}

#[test]
fn timer_firing_exactly_at_the_keep_alive_deadline_ends_the_session() {
    // G-71: a wake-up at exactly last-heard + 90 s must lose the client, not
    // re-arm the same deadline (that spun the gateway at 100 % CPU).
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    h.advance(Duration::from_secs(90));
    assert!(has_abnormal_disconnect(&h.commands()));
}

#[test]
fn keep_alive_above_one_minute_has_ten_percent_tolerance() {
    // G-71: 100 s ⇒ 110 s.
    let mut h = Harness::new();
    h.send(1, connect_msg("cl1", true, false, 100));
    h.play_broker();
    h.advance(Duration::from_secs(109));
    assert!(!has_abnormal_disconnect(&h.commands()));
    h.advance(Duration::from_secs(2));
    assert!(has_abnormal_disconnect(&h.commands()));
}

#[test]
fn any_message_restarts_keep_alive_supervision() {
    // G-72
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    h.advance(Duration::from_secs(80));
    h.send(
        1,
        Message::Register {
            topic_id: 0,
            msg_id: 1,
            topic_name: Bytes::from_static(b"a"),
        },
    );
    h.advance(Duration::from_secs(80));
    assert!(!has_abnormal_disconnect(&h.commands()));
    h.advance(Duration::from_secs(11));
    assert!(has_abnormal_disconnect(&h.commands()));
}

#[test]
fn disconnect_is_answered_with_disconnect_and_no_will() {
    // G-73
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    h.raw(1, &[0x02, 0x18]);
    assert_eq!(h.raw_replies_to(1), vec![vec![0x02, 0x18]]);
    let cmds = h.commands();
    assert!(has_graceful_disconnect(&cmds));
    assert!(!has_abnormal_disconnect(&cmds));
}

#[test]
fn clean_session_is_forgotten_after_disconnect() {
    // Memory does not grow with sensors that come and go.
    let mut h = Harness::new();
    for i in 0..50u16 {
        h.connect(i, &format!("c{i}"), true);
        h.send(i, Message::Disconnect { duration: None });
    }
    assert_eq!(h.gw.session_count(), 0);
}

#[test]
fn persistent_session_expires_after_the_configured_time() {
    let mut h = Harness::new();
    h.connect(1, "cl1", false);
    h.send(1, Message::Disconnect { duration: None });
    assert_eq!(h.gw.session_count(), 1);
    h.advance(Duration::from_secs(86_401));
    assert_eq!(h.gw.session_count(), 0);
}

#[test]
fn session_message_after_disconnect_gets_disconnect() {
    // G-75
    let mut h = Harness::new();
    h.connect(1, "cl1", false);
    h.send(1, Message::Disconnect { duration: None });
    h.replies_to(1);
    h.send(1, Message::PingReq { client_id: None });
    assert_eq!(
        h.replies_to(1),
        vec![Message::Disconnect { duration: None }]
    );
}

#[test]
fn session_message_from_unknown_sender_gets_disconnect() {
    // G-75, digest §5.20
    let mut h = Harness::new();
    h.raw(1, &[0x09, 0x0C, 0x00, 0x00, 0x01, 0x00, 0x00, b'h', b'i']);
    assert_eq!(h.raw_replies_to(1), vec![vec![0x02, 0x18]]);
}

#[test]
fn gateway_disconnect_is_always_two_octets() {
    // G-74
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    h.raw(1, &[0x04, 0x18, 0x00, 0x10]);
    assert_eq!(h.raw_replies_to(1), vec![vec![0x02, 0x18]]);
}

#[test]
fn connect_from_an_address_of_another_client_ends_that_session() {
    // Digest §5.16
    let mut h = Harness::new();
    h.connect(1, "a", true);
    h.send(1, connect_msg("b", true, false, 60));
    let cmds = h.commands();
    assert!(has_graceful_disconnect(&cmds));
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::Connect(r) if &*r.client_id == "b"))
    );
}

#[test]
fn session_taken_over_by_the_core_is_dropped_with_disconnect() {
    // Brief: Outbound::Disconnect(SessionTakenOver) ends the sensor's session.
    let mut h = Harness::new();
    let conn = h.connect(1, "cl1", true);
    h.outbound(
        conn,
        Outbound::Disconnect(crate::broker::ServerDisconnect::SessionTakenOver),
    );
    assert_eq!(
        h.replies_to(1),
        vec![Message::Disconnect { duration: None }]
    );
    assert_eq!(h.gw.session_count(), 0);
    assert!(h.commands().is_empty(), "the core already ended it");
}

#[test]
fn disconnects_to_unknown_senders_are_rate_limited() {
    // Digest §5.20
    let mut h = Harness::new();
    for i in 0..200u16 {
        h.raw(i, &[0x02, 0x16]);
    }
    let n = h.transmits().len();
    assert!(n > 0 && n < 200, "{n}");
}

#[test]
fn broadcasts_and_acks_from_unknown_senders_get_no_disconnect() {
    // Digest §5.20
    let mut h = Harness::new();
    h.raw(1, &[0x07, 0x0D, 0x00, 0x01, 0x00, 0x01, 0x00]);
    h.raw(1, &[0x04, 0x0E, 0x00, 0x01]);
    assert!(h.transmits().is_empty());
}
