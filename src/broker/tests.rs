//! Scenario tests of the broker core with a hand-driven clock.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::api::*;
use super::core::Broker;
use super::message::Message;
use super::test_client::{Client, broker, connect_request, subscribe};
use crate::qos::QoS;

fn connect(
    b: &mut Broker,
    id: &str,
    clean: bool,
    expiry: u32,
    will: Option<Will>,
    now: Instant,
) -> Client {
    let (outbox, rx) = Outbox::channel();
    let conn = ConnId::next();
    b.handle(
        Command::Connect(ConnectRequest {
            clean_start: clean,
            session_expiry: expiry,
            will,
            ..connect_request(conn, id, outbox)
        }),
        now,
    );
    Client { conn, rx }
}

#[allow(clippy::too_many_arguments)]
fn publish(
    b: &mut Broker,
    c: &Client,
    topic: &str,
    payload: &str,
    qos: QoS,
    retain: bool,
    pid: Option<u16>,
    now: Instant,
) {
    b.handle(
        Command::Publish {
            conn: c.conn,
            packet_id: pid,
            message: Message::new(topic, Bytes::from(payload.to_string()), qos, retain),
        },
        now,
    );
}

fn will(topic: &str, payload: &str, delay: u32) -> Will {
    Will {
        message: Message::new(
            topic,
            Bytes::from(payload.to_string()),
            QoS::AtLeastOnce,
            false,
        ),
        delay,
    }
}

#[test]
fn connack_reports_session_present_only_for_resumed_sessions() {
    let (mut b, now) = broker();
    let mut c = connect(&mut b, "a", false, u32::MAX, None, now);
    assert_eq!(
        c.events(),
        vec![Outbound::ConnAck {
            session_present: false
        }]
    );
    b.handle(
        Command::Disconnect {
            conn: c.conn,
            kind: DisconnectKind::Abnormal,
        },
        now,
    );
    let mut c = connect(&mut b, "a", false, u32::MAX, None, now);
    assert_eq!(
        c.events(),
        vec![Outbound::ConnAck {
            session_present: true
        }]
    );
}

#[test]
fn qos1_publish_is_acknowledged_and_delivered_to_subscriber() {
    let (mut b, now) = broker();
    let mut sub = connect(&mut b, "sub", true, 0, None, now);
    subscribe(&mut b, &sub, "t/#", QoS::AtLeastOnce, now);
    let mut publ = connect(&mut b, "pub", true, 0, None, now);
    publish(
        &mut b,
        &publ,
        "t/1",
        "hello",
        QoS::AtLeastOnce,
        false,
        Some(9),
        now,
    );
    assert!(publ.events().contains(&Outbound::PubAck {
        packet_id: 9,
        outcome: PublishOutcome::Delivered
    }));
    assert_eq!(sub.payloads(), vec!["hello"]);
}

#[test]
fn publish_without_subscribers_reports_no_matching_subscribers() {
    let (mut b, now) = broker();
    let mut publ = connect(&mut b, "pub", true, 0, None, now);
    publish(
        &mut b,
        &publ,
        "t",
        "x",
        QoS::AtLeastOnce,
        false,
        Some(1),
        now,
    );
    assert!(publ.events().contains(&Outbound::PubAck {
        packet_id: 1,
        outcome: PublishOutcome::NoMatchingSubscribers
    }));
}

#[test]
fn overlapping_subscriptions_deliver_one_copy_at_highest_qos() {
    let (mut b, now) = broker();
    let mut sub = connect(&mut b, "sub", true, 0, None, now);
    subscribe(&mut b, &sub, "a/+", QoS::AtMostOnce, now);
    subscribe(&mut b, &sub, "a/#", QoS::ExactlyOnce, now);
    let publ = connect(&mut b, "pub", true, 0, None, now);
    publish(
        &mut b,
        &publ,
        "a/b",
        "x",
        QoS::ExactlyOnce,
        false,
        Some(1),
        now,
    );
    let deliveries: Vec<_> = sub
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Outbound::Deliver(d) => Some(d.message.qos),
            _ => None,
        })
        .collect();
    assert_eq!(deliveries, vec![QoS::ExactlyOnce]);
}

#[test]
fn retained_message_goes_to_new_subscriber_with_retain_set() {
    let (mut b, now) = broker();
    let publ = connect(&mut b, "pub", true, 0, None, now);
    publish(&mut b, &publ, "r", "kept", QoS::AtMostOnce, true, None, now);
    let mut sub = connect(&mut b, "sub", true, 0, None, now);
    subscribe(&mut b, &sub, "r", QoS::AtMostOnce, now);
    let evs = sub.events();
    assert!(
        matches!(evs[1], Outbound::SubAck { .. }),
        "SUBACK comes before retained"
    );
    match &evs[2] {
        Outbound::Deliver(d) => {
            assert!(d.message.retain);
            assert_eq!(d.message.payload, Bytes::from_static(b"kept"));
        }
        other => panic!("expected a delivery, got {other:?}"),
    }
}

#[test]
fn live_forwarding_clears_retain_flag() {
    let (mut b, now) = broker();
    let mut sub = connect(&mut b, "sub", true, 0, None, now);
    subscribe(&mut b, &sub, "r", QoS::AtMostOnce, now);
    sub.events();
    let publ = connect(&mut b, "pub", true, 0, None, now);
    publish(&mut b, &publ, "r", "v", QoS::AtMostOnce, true, None, now);
    match sub.events().as_slice() {
        [Outbound::Deliver(d)] => assert!(!d.message.retain),
        other => panic!("{other:?}"),
    }
}

#[test]
fn will_is_published_on_abnormal_disconnect_but_not_on_graceful() {
    let (mut b, now) = broker();
    let mut sub = connect(&mut b, "sub", true, 0, None, now);
    subscribe(&mut b, &sub, "will/#", QoS::AtLeastOnce, now);
    sub.events();
    let a = connect(&mut b, "a", true, 0, Some(will("will/a", "gone", 0)), now);
    let c = connect(&mut b, "c", true, 0, Some(will("will/c", "gone", 0)), now);
    b.handle(
        Command::Disconnect {
            conn: a.conn,
            kind: DisconnectKind::Abnormal,
        },
        now,
    );
    b.handle(
        Command::Disconnect {
            conn: c.conn,
            kind: DisconnectKind::Graceful {
                publish_will: false,
                session_expiry: None,
            },
        },
        now,
    );
    assert_eq!(sub.payloads(), vec!["gone"]);
}

#[test]
fn delayed_will_waits_and_is_cancelled_by_reconnect() {
    let (mut b, now) = broker();
    let mut sub = connect(&mut b, "sub", true, 0, None, now);
    subscribe(&mut b, &sub, "w", QoS::AtMostOnce, now);
    sub.events();
    let a = connect(&mut b, "a", false, 100, Some(will("w", "late", 5)), now);
    b.handle(
        Command::Disconnect {
            conn: a.conn,
            kind: DisconnectKind::Abnormal,
        },
        now,
    );
    b.tick(now + Duration::from_secs(2));
    assert!(sub.payloads().is_empty());
    let _a = connect(&mut b, "a", false, 100, None, now + Duration::from_secs(3));
    b.tick(now + Duration::from_secs(10));
    assert!(
        sub.payloads().is_empty(),
        "reconnect cancels the delayed will"
    );
}

#[test]
fn delayed_will_is_published_when_delay_passes() {
    let (mut b, now) = broker();
    let mut sub = connect(&mut b, "sub", true, 0, None, now);
    subscribe(&mut b, &sub, "w", QoS::AtMostOnce, now);
    sub.events();
    let a = connect(&mut b, "a", false, 100, Some(will("w", "late", 5)), now);
    b.handle(
        Command::Disconnect {
            conn: a.conn,
            kind: DisconnectKind::Abnormal,
        },
        now,
    );
    b.tick(now + Duration::from_secs(6));
    assert_eq!(sub.payloads(), vec!["late"]);
}

#[test]
fn persistent_session_queues_qos1_while_offline_and_delivers_in_order() {
    let (mut b, now) = broker();
    let s = connect(&mut b, "s", false, u32::MAX, None, now);
    subscribe(&mut b, &s, "q", QoS::AtLeastOnce, now);
    b.handle(
        Command::Disconnect {
            conn: s.conn,
            kind: DisconnectKind::Abnormal,
        },
        now,
    );
    let publ = connect(&mut b, "p", true, 0, None, now);
    for n in 0..5 {
        publish(
            &mut b,
            &publ,
            "q",
            &n.to_string(),
            QoS::AtLeastOnce,
            false,
            Some(n + 1),
            now,
        );
    }
    let mut s = connect(&mut b, "s", false, u32::MAX, None, now);
    assert_eq!(s.payloads(), vec!["0", "1", "2", "3", "4"]);
}

#[test]
fn clean_start_discards_previous_session() {
    let (mut b, now) = broker();
    let s = connect(&mut b, "s", false, u32::MAX, None, now);
    subscribe(&mut b, &s, "q", QoS::AtLeastOnce, now);
    b.handle(
        Command::Disconnect {
            conn: s.conn,
            kind: DisconnectKind::Abnormal,
        },
        now,
    );
    let mut s = connect(&mut b, "s", true, 0, None, now);
    assert_eq!(
        s.events(),
        vec![Outbound::ConnAck {
            session_present: false
        }]
    );
    assert_eq!(b.subscription_count(), 0);
}

#[test]
fn second_connection_takes_over_session_and_old_one_is_told() {
    let (mut b, now) = broker();
    let mut first = connect(&mut b, "x", false, u32::MAX, None, now);
    first.events();
    let _second = connect(&mut b, "x", false, u32::MAX, None, now);
    assert_eq!(
        first.events(),
        vec![Outbound::Disconnect(ServerDisconnect::SessionTakenOver)]
    );
    assert_eq!(b.clients_connected(), 1);
    // The old connection's late Disconnect must not detach the new one.
    b.handle(
        Command::Disconnect {
            conn: first.conn,
            kind: DisconnectKind::Abnormal,
        },
        now,
    );
    assert_eq!(b.clients_connected(), 1);
}

#[test]
fn qos2_retransmission_before_pubrel_is_not_delivered_twice() {
    let (mut b, now) = broker();
    let mut sub = connect(&mut b, "sub", true, 0, None, now);
    subscribe(&mut b, &sub, "t", QoS::ExactlyOnce, now);
    sub.events();
    let mut publ = connect(&mut b, "p", true, 0, None, now);
    publish(
        &mut b,
        &publ,
        "t",
        "once",
        QoS::ExactlyOnce,
        false,
        Some(3),
        now,
    );
    publish(
        &mut b,
        &publ,
        "t",
        "once",
        QoS::ExactlyOnce,
        false,
        Some(3),
        now,
    );
    assert_eq!(sub.payloads(), vec!["once"]);
    b.handle(
        Command::PubRel {
            conn: publ.conn,
            packet_id: 3,
        },
        now,
    );
    assert!(publ.events().contains(&Outbound::PubComp {
        packet_id: 3,
        found: true
    }));
}

#[test]
fn offline_session_expires_after_its_interval() {
    let (mut b, now) = broker();
    let s = connect(&mut b, "s", false, 10, None, now);
    b.handle(
        Command::Disconnect {
            conn: s.conn,
            kind: DisconnectKind::Abnormal,
        },
        now,
    );
    b.tick(now + Duration::from_secs(5));
    assert_eq!(b.clients_total(), 1);
    b.tick(now + Duration::from_secs(11));
    assert_eq!(b.clients_total(), 0);
}

#[test]
fn no_local_subscription_does_not_receive_own_messages() {
    let (mut b, now) = broker();
    let mut c = connect(&mut b, "c", true, 0, None, now);
    b.handle(
        Command::Subscribe {
            conn: c.conn,
            packet_id: 1,
            filters: vec![SubscribeRequest {
                filter: "t".into(),
                options: SubscriptionOptions {
                    no_local: true,
                    ..SubscriptionOptions::default()
                },
            }],
            subscription_id: None,
        },
        now,
    );
    publish(&mut b, &c, "t", "mine", QoS::AtMostOnce, false, None, now);
    assert!(c.payloads().is_empty());
}

#[test]
fn overlapping_subscriptions_carry_every_subscription_identifier() {
    let (mut b, now) = broker();
    let mut c = connect(&mut b, "c", true, 0, None, now);
    for (filter, id) in [("a/#", 1), ("a/+", 2)] {
        b.handle(
            Command::Subscribe {
                conn: c.conn,
                packet_id: 1,
                filters: vec![SubscribeRequest {
                    filter: filter.into(),
                    options: SubscriptionOptions::default(),
                }],
                subscription_id: Some(id),
            },
            now,
        );
    }
    c.events();
    let p = connect(&mut b, "p", true, 0, None, now);
    publish(&mut b, &p, "a/b", "x", QoS::AtMostOnce, false, None, now);
    match c.events().as_slice() {
        [Outbound::Deliver(d)] => {
            let mut ids = d.subscription_ids.clone();
            ids.sort_unstable();
            assert_eq!(ids, vec![1, 2]);
        }
        other => panic!("{other:?}"),
    }
}
