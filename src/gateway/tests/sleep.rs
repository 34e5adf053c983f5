//! Sleeping clients (digest §4.14).

use std::time::Duration;

use super::*;
use crate::mqttsn::codec::ReturnCode;

fn asleep(h: &mut Harness, secs: u16) -> ConnId {
    let (conn, _) = h.connect_and_subscribe(1, "cl1", "a/b", QoS::AtLeastOnce);
    let [a, b] = secs.to_be_bytes();
    h.raw(1, &[0x04, 0x18, a, b]);
    assert_eq!(h.raw_replies_to(1), vec![vec![0x02, 0x18]]);
    conn
}

fn wake(h: &mut Harness, p: u16) {
    h.raw(p, &[0x05, 0x16, b'c', b'l', b'1']);
}

#[test]
fn disconnect_with_duration_is_acknowledged_and_client_sleeps() {
    // G-76
    let mut h = Harness::new();
    asleep(&mut h, 300);
    assert!(h.commands().is_empty(), "the broker connection stays");
}

#[test]
fn messages_for_an_asleep_client_are_buffered_not_sent() {
    // G-77
    let mut h = Harness::new();
    let conn = asleep(&mut h, 300);
    h.outbound(conn, delivery("a/b", b"1", QoS::AtLeastOnce, Some(1)));
    h.outbound(conn, delivery("a/b", b"2", QoS::AtMostOnce, None));
    assert!(h.transmits().is_empty());
}

#[test]
fn qos0_beyond_the_sleep_buffer_is_dropped_and_counted() {
    let mut h = Harness::with(GatewaySettings {
        max_buffered_messages: 2,
        ..settings()
    });
    let conn = asleep(&mut h, 300);
    for _ in 0..5 {
        h.outbound(conn, delivery("a/b", b"x", QoS::AtMostOnce, None));
    }
    assert_eq!(h.gw.stats().dropped_qos0, 3);
}

#[test]
fn asleep_client_silent_beyond_sleep_tolerance_is_lost() {
    // G-78: 300 s ⇒ 330 s.
    let mut h = Harness::new();
    asleep(&mut h, 300);
    h.advance(Duration::from_secs(329));
    assert!(!has_abnormal_disconnect(&h.commands()));
    h.advance(Duration::from_secs(2));
    assert!(has_abnormal_disconnect(&h.commands()));
}

#[test]
fn keep_alive_does_not_apply_while_asleep() {
    let mut h = Harness::new();
    asleep(&mut h, 300);
    h.advance(Duration::from_secs(200));
    assert!(h.commands().is_empty());
}

#[test]
fn wake_up_with_empty_buffer_gets_pingresp_and_restarts_sleep_timer() {
    // G-79
    let mut h = Harness::new();
    asleep(&mut h, 300);
    h.advance(Duration::from_secs(300));
    wake(&mut h, 1);
    assert_eq!(h.raw_replies_to(1), vec![vec![0x02, 0x17]]);
    h.advance(Duration::from_secs(300));
    assert!(!has_abnormal_disconnect(&h.commands()));
}

#[test]
fn wake_up_flushes_buffered_messages_then_pingresp() {
    // G-80, G-81
    let mut h = Harness::new();
    let conn = asleep(&mut h, 300);
    h.outbound(conn, delivery("a/b", b"1", QoS::AtLeastOnce, Some(1)));
    h.outbound(conn, delivery("a/b", b"2", QoS::AtMostOnce, None));
    wake(&mut h, 1);
    let r = h.replies_to(1);
    assert_eq!(r.len(), 2, "both publishes, no PINGRESP yet: {r:?}");
    assert!(r.iter().all(|m| matches!(m, Message::Publish { .. })));
    let Message::Publish { topic, .. } = &r[0] else {
        panic!()
    };
    h.send(
        1,
        Message::PubAck {
            topic_id: super::super::dispatch::raw_topic_id(*topic),
            msg_id: 1,
            code: ReturnCode::Accepted,
        },
    );
    assert_eq!(h.replies_to(1), vec![Message::PingResp]);
}

#[test]
fn wake_up_registers_unknown_topics_before_publishing() {
    // G-80
    let mut h = Harness::new();
    let (conn, _) = h.connect_and_subscribe(1, "cl1", "w/#", QoS::AtMostOnce);
    h.raw(1, &[0x04, 0x18, 0x01, 0x2C]);
    h.replies_to(1);
    h.outbound(conn, delivery("w/x", b"1", QoS::AtMostOnce, None));
    wake(&mut h, 1);
    let r = h.replies_to(1);
    let [
        Message::Register {
            topic_id, msg_id, ..
        },
    ] = r[..]
    else {
        panic!("{r:?}")
    };
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
        matches!(&r[..], [Message::Publish { .. }, Message::PingResp]),
        "{r:?}"
    );
}

#[test]
fn new_sleep_duration_while_asleep_governs_the_timer() {
    // G-82
    let mut h = Harness::new();
    asleep(&mut h, 300);
    h.raw(1, &[0x04, 0x18, 0x00, 0x0A]);
    assert_eq!(h.raw_replies_to(1), vec![vec![0x02, 0x18]]);
    h.advance(Duration::from_secs(16));
    assert!(has_abnormal_disconnect(&h.commands()));
}

#[test]
fn connect_from_asleep_client_returns_it_to_active_and_delivers_buffered() {
    // G-83
    let mut h = Harness::new();
    let conn = asleep(&mut h, 300);
    h.outbound(conn, delivery("a/b", b"1", QoS::AtMostOnce, None));
    h.send(1, connect_msg("cl1", false, false, 60));
    assert!(h.commands().is_empty(), "the broker connection is kept");
    let r = h.replies_to(1);
    assert!(
        matches!(
            &r[..],
            [
                Message::ConnAck {
                    code: ReturnCode::Accepted
                },
                Message::Register { .. }
            ]
        ),
        "{r:?}"
    );
}

#[test]
fn disconnect_without_duration_while_asleep_disconnects_without_will() {
    // G-84
    let mut h = Harness::new();
    asleep(&mut h, 300);
    h.raw(1, &[0x02, 0x18]);
    assert_eq!(h.raw_replies_to(1), vec![vec![0x02, 0x18]]);
    let cmds = h.commands();
    assert!(has_graceful_disconnect(&cmds));
}

#[test]
fn wake_up_from_a_new_address_rebinds_the_session() {
    // G-85
    let mut h = Harness::new();
    let conn = asleep(&mut h, 300);
    h.outbound(conn, delivery("a/b", b"1", QoS::AtMostOnce, None));
    wake(&mut h, 2);
    let r = h.replies_to(2);
    assert!(
        matches!(&r[..], [Message::Register { .. }])
            || matches!(&r[..], [Message::Publish { .. }, Message::PingResp]),
        "{r:?}"
    );
}

#[test]
fn pingreq_with_unknown_client_id_is_not_answered() {
    // Digest §5.4
    let mut h = Harness::new();
    h.raw(3, &[0x05, 0x16, b'z', b'z', b'z']);
    assert!(h.transmits().is_empty());
}

#[test]
fn other_requests_while_asleep_get_disconnect_and_keep_the_session() {
    // Digest §5.13
    let mut h = Harness::new();
    asleep(&mut h, 300);
    h.send(
        1,
        Message::Register {
            topic_id: 0,
            msg_id: 1,
            topic_name: Bytes::from_static(b"x"),
        },
    );
    assert_eq!(
        h.replies_to(1),
        vec![Message::Disconnect { duration: None }]
    );
    wake(&mut h, 1);
    assert_eq!(h.replies_to(1), vec![Message::PingResp]);
}

#[test]
fn messages_that_expire_while_asleep_are_not_sent() {
    let mut h = Harness::new();
    let conn = asleep(&mut h, 300);
    let Outbound::Deliver(mut d) = delivery("a/b", b"1", QoS::AtLeastOnce, Some(1)) else {
        unreachable!()
    };
    d.message.expires_at = Some(h.now + Duration::from_secs(10));
    h.outbound(conn, Outbound::Deliver(d));
    h.advance(Duration::from_secs(20));
    wake(&mut h, 1);
    assert_eq!(h.replies_to(1), vec![Message::PingResp]);
    assert!(
        h.commands()
            .iter()
            .any(|c| matches!(c, Command::PubAck { packet_id: 1, .. }))
    );
}
